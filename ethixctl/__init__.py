"""ethixctl: the EthixAI operations playbooks as code.

The package is a library first (``ethixctl.release``, ``ethixctl.smoke``, ``ethixctl.platform`` …);
``ethixctl.cli`` is a thin typer layer over it.
"""

from pathlib import Path

__version__ = "0.1.0"

# The default playbooks ship inside the package (ethixctl/playbooks is a link to the repository's
# playbooks/ that the wheel turns into files), so an installed ethixctl finds them without a checkout.
PLAYBOOKS = Path(__file__).parent / "playbooks"
