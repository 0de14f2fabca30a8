"""ethixctl: the EthixAI operations playbooks as code.

The package is a library first (``ethixctl.release``, ``ethixctl.smoke``, ``ethixctl.platform`` …);
``ethixctl.cli`` is a thin typer layer over it.
"""

__version__ = "0.1.0"
