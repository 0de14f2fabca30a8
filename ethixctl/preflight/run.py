"""One preflight run: the checklists that apply to the environment, every item judged, the whole run
recorded on the ledger (kind ``preflight``) with each result and who confirmed what."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ethixctl.errors import UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger, user
from ethixctl.preflight.checks import Context, Status, run_check
from ethixctl.preflight.model import Preflight

if TYPE_CHECKING:
    from ethixctl.adapters.prometheus import MetricSource
    from ethixctl.config import Environment

KIND = "preflight"


@dataclass
class ItemResult:
    checklist: str
    id: str
    title: str
    kind: Literal["check", "confirm"]
    status: Status
    detail: str


@dataclass
class Report:
    environment: str
    services: list[str]
    checklists: list[str]
    items: list[ItemResult] = field(default_factory=list)
    operation_id: str | None = None

    @property
    def status(self) -> Literal["passed", "failed", "unavailable"]:
        if any(r.status == "unavailable" for r in self.items):
            return "unavailable"
        return "failed" if any(r.status == "fail" for r in self.items) else "passed"

    @property
    def exit_code(self) -> ExitCode:
        return {"passed": ExitCode.OK, "unavailable": ExitCode.PLATFORM_UNAVAILABLE}.get(
            self.status, ExitCode.FAILED
        )

    def problems(self) -> list[ItemResult]:
        return [r for r in self.items if r.status != "pass"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment, "services": self.services, "checklists": self.checklists,
            "status": self.status, "operation_id": self.operation_id,
            "items": [asdict(r) for r in self.items],
        }  # fmt: skip


def parse_confirmations(pairs: list[str], book: Preflight) -> dict[str, str]:
    """``--confirm ID=WHO`` flags: the answers a person gave for ``confirm`` items (CI has no prompt)."""
    known = {item.id for items in book.checklists.values() for item in items if item.confirm}
    answers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value.strip():
            raise UsageError(f"--confirm expects ID=WHO (e.g. on_call=alice), got {pair!r}")
        if key not in known:
            raise UsageError(
                f"--confirm {key}: no such item to confirm", hint=f"items: {', '.join(sorted(known))}"
            )
        answers[key] = value.strip()
    return answers


def run_preflight(
    book: Preflight,
    context: Context,
    checklists: list[str],
    *,
    answers: dict[str, str],
    ask: Callable[[str], bool] | None,
    on_item: Callable[[ItemResult], None] = lambda result: None,
) -> Report:
    """Judge every item. ``ask`` puts a confirm question to a person (None: nobody can answer here)."""
    report = Report(context.environment.name, context.services, checklists)
    for checklist, item in book.items(checklists):
        if item.check is not None:
            finding = run_check(item.check, context, item.params)
            result = ItemResult(checklist, item.id, item.title, "check", finding.status, finding.detail)
        elif item.id in answers:
            result = ItemResult(
                checklist, item.id, item.title, "confirm", "pass", f"{answers[item.id]} (--confirm)"
            )
        elif ask is not None and ask(item.confirm or item.title):
            result = ItemResult(checklist, item.id, item.title, "confirm", "pass", f"confirmed by {user()}")
        else:
            result = ItemResult(
                checklist, item.id, item.title, "confirm", "fail",
                f"not confirmed: answer on a terminal, or pass --confirm {item.id}=WHO",
            )  # fmt: skip
        report.items.append(result)
        on_item(result)
    return report


def execute(
    book: Preflight,
    environment: Environment,
    ledger: Ledger,
    *,
    services: list[str] | None,
    metric_source: MetricSource,
    answers: dict[str, str],
    ask: Callable[[str], bool] | None,
    checklists: list[str] | None = None,
    on_item: Callable[[ItemResult], None] = lambda result: None,
) -> Report:
    """Run the checklists that apply to ``environment`` (or ``checklists``) over ``services`` (default:
    every service of the environment) and record the run."""
    chosen = book.for_environment(environment.name) if checklists is None else checklists
    unknown = [name for name in chosen if name not in book.checklists]
    if unknown:
        raise UsageError(
            f"unknown checklist {', '.join(unknown)}", hint=f"known: {', '.join(book.checklists)}"
        )
    context = Context(environment, ledger, services or [], metric_source)
    try:
        if not services and chosen:
            context.services = [s.name for s in context.cloud_run().list_services()]
        report = run_preflight(book, context, chosen, answers=answers, ask=ask, on_item=on_item)
    finally:
        context.close()
    if chosen:
        record(ledger, report, services[0] if services and len(services) == 1 else "all")
    return report


def record(ledger: Ledger, report: Report, subject: str) -> None:
    """The run on the ledger: what was checked, each result, and who confirmed what."""
    op = ledger.create_operation(
        KIND, subject, report.environment, "done",
        details={"checklists": report.checklists, "services": report.services,
                 "items": [asdict(r) for r in report.items]},
    )  # fmt: skip
    failed = ", ".join(r.id for r in report.problems())
    ledger.finish_if_in_progress(
        op.id, report.status, f"not passed: {failed}" if failed else "all items passed"
    )
    report.operation_id = op.id


def record_skip(ledger: Ledger, environment: str, subject: str, reason: str) -> str:
    """``release --skip-preflight REASON``: the skip itself is an entry of its own, with who and why."""
    op = ledger.create_operation(KIND, subject, environment, "skipped", details={"skipped": True})
    ledger.finish_if_in_progress(op.id, "skipped", reason)
    return op.id
