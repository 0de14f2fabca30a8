"""Preflight on the terminal: one line per item, and the yes/no questions put to a person."""

from __future__ import annotations

from collections.abc import Callable

from ethixctl import output
from ethixctl.preflight.run import ItemResult


def ask_person(json: bool) -> Callable[[str], bool] | None:
    """A yes/no question for the person at the terminal; nobody to ask in CI, with --json or no TTY."""
    if json or not output.interactive():
        return None
    return lambda question: output.confirm(question, assume_yes=False)


def show_item(result: ItemResult) -> None:
    label = output.markup("[bold]{}[/bold] {}: {}", result.id, result.title, result.detail)
    if result.status == "pass":
        output.success(label)
    elif result.status == "unavailable":
        output.warn(label)
    else:
        output.failure(label)
