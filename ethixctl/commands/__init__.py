"""One module per command. Each defines ``command`` (or ``app`` for a group) and may set ``NAME``
and ``PANEL``; module level imports stay light (typer and ethixctl's own small modules only)."""
