"""One module per command. Each defines ``command`` (or ``app`` for a group) and is listed, with its
one-line summary, in ``ethixctl.cli.COMMANDS``; module level imports stay light (typer and ethixctl's
own small modules only)."""
