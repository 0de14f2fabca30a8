"""``ethixctl backup create | list | show``: snapshots through the Atlas API (local: the control plane)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import DryRunFlag, EnvOption, JsonFlag, StateDirOption

app = typer.Typer(
    help=(
        "Take, list and show snapshots (mongodump layout + manifest).\n\n"
        "Snapshots are taken through the Atlas Admin API (locally: the control plane, which also takes\n"
        "them on the DR playbook's schedule). Each holds the mongodump --gzip directory layout and a\n"
        "manifest: point in time, newest write and heartbeat, per collection count, SHA-256 and indexes,\n"
        "and every stored object with its generation and checksum.\n\n"
        "\b\nExamples:\n"
        "  ethixctl backup create\n"
        "  ethixctl backup list --json\n"
        "  ethixctl backup show 6751c0de"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _connect(env: str | None, state_dir: Path | None) -> Any:
    from ethixctl.config import resolve_environment
    from ethixctl.dr import playbook
    from ethixctl.dr.context import connect

    return connect(resolve_environment(env, state_dir), playbook.load())


@app.command("create")
def create(
    description: Annotated[
        str, typer.Option("--description", help="Stored with the snapshot.")
    ] = "on demand",
    dry_run: DryRunFlag = False,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Take a snapshot now and wait until it is complete.

    \b
    Examples:
      ethixctl backup create --description "before the migration"
      ethixctl backup create --json
    """
    import math

    from ethixctl.dr import snapshot

    ctx = _connect(env, state_dir)
    try:
        if dry_run:
            output.info(f"would take a snapshot of cluster {ctx.target.cluster} into {ctx.backups.url}")
            return
        retention_days = max(1, math.ceil(ctx.book.retention.snapshots / 86_400))
        taken = ctx.atlas.take_snapshot(description, retention_days)
        output.info(f"snapshot {taken.id} {taken.status} …")
        done = ctx.atlas.wait_snapshot(taken.id)
        try:
            manifest = ctx.manifest(done.id)
        except snapshot.NoManifest as exc:
            # Taken, but by Atlas alone: say plainly that drills and restores cannot verify it.
            output.warn(f"snapshot {done.id} is complete, but {exc.message}")
            if json:
                output.emit_json({"id": done.id, "created_at": done.created_at, "manifest": False})
            return
    finally:
        ctx.close()
    for problem in manifest["problems"]:
        output.warn(problem)
    if json:
        output.emit_json(summary(manifest))
        return
    _show_manifest(manifest)


@app.command("list")
def list_(
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Snapshots, newest first, with what each contains.

    \b
    Examples:
      ethixctl backup list
      ethixctl backup list --json | jq '.[0].id'
    """
    from ethixctl.dr import snapshot

    ctx = _connect(env, state_dir)
    try:
        snapshots = ctx.atlas.list_snapshots()
        manifests = {m["id"]: m for m in snapshot.list_manifests(ctx.backups)}
    finally:
        ctx.close()
    rows = []
    for item in snapshots:
        manifest = manifests.get(item.id)
        rows.append(
            {
                "id": item.id,
                "created_at": item.created_at,
                "status": item.status,
                "type": item.snapshot_type,
                "size_bytes": item.storage_size_bytes,
                **(summary(manifest) if manifest else {"manifest": False}),
            }
        )
    if json:
        output.emit_json(rows)
        return
    table = output.table(title="snapshots", header_style="bold")
    for column in ("id", "created", "status", "type", "documents", "newest write", "size"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"], row["created_at"] or "—", row["status"], row["type"], str(row.get("documents", "—")),
            row.get("newest_write") or "—", _size(row["size_bytes"]),
        )  # fmt: skip
    output.show(table)


@app.command("show")
def show(
    snapshot_id: Annotated[str, typer.Argument(metavar="ID", help="Snapshot id (or an unambiguous prefix).")],
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """A snapshot's manifest: collections, counts, hashes, indexes, objects, files.

    \b
    Examples:
      ethixctl backup show 6751c0de
      ethixctl backup show 6751c0de --json
    """

    ctx = _connect(env, state_dir)
    try:
        manifest = ctx.manifest(snapshot_id)
    finally:
        ctx.close()
    if json:
        output.emit_json(manifest)
        return
    _show_manifest(manifest)


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "point_in_time", "newest_write", "newest_heartbeat", "documents", "size_bytes", "trigger")
    return {
        "manifest": True,
        **{key: manifest[key] for key in keys},
        "collections": len(manifest["collections"]),
    }


def _size(size: int | None) -> str:
    if size is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def _show_manifest(manifest: dict[str, Any]) -> None:
    output.show(
        f"snapshot {manifest['id']} of {manifest['cluster']}: point in time {manifest['point_in_time']}, "
        f"newest write {manifest['newest_write']}, newest heartbeat {manifest['newest_heartbeat']}"
    )
    from ethixctl.dr.snapshot import describe_indexes, indexes_of

    table = output.table(title="collections", header_style="bold")
    for column in ("collection", "documents", "sha256", "indexes"):
        table.add_column(column)
    for name, coll in manifest["collections"].items():
        indexes = describe_indexes(indexes_of(coll["indexes"]))
        table.add_row(name, str(coll["count"]), coll["sha256"][:16] + "…", indexes)
    output.show(table)
    output.show(
        f"{len(manifest['objects'])} stored objects, {len(manifest['files'])} files, "
        f"{_size(manifest['size_bytes'])}, taken in {manifest['duration_seconds']:.2f} s"
    )
