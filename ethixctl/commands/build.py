"""``ethixctl build SERVICE``: snapshot a service's source as a local image."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import JsonFlag, StateDirOption


def command(
    service: Annotated[str, typer.Argument(help="Service to build (backend, ai_core).")],
    state_dir: StateDirOption = None,
    json: JsonFlag = False,
) -> None:
    """Snapshot services/ into a content-addressed local image.

    Build a content-addressed local image (local/SERVICE@sha256:…) from services/.

    The same source always gives the same reference. Deploy it with `ethixctl release`.

    Examples:

      ethixctl build backend

      ethixctl release backend --image "$(ethixctl build backend)"
    """
    from ethixctl.config import local_state_dir
    from ethixctl.platform import images

    image = images.build(service, local_state_dir(state_dir) / "images")
    if json:
        output.emit_json(
            {"service": image.service, "ref": image.ref, "digest": image.digest, "path": str(image.path)}
        )
    else:
        output.line(image.ref)
