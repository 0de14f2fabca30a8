"""Release events and notifications: the console (through the CLI's event callback) and the ledger
always; a Slack incoming webhook when one is configured for the environment.

Every long operation (release, rotation, drill, restore) reports through one Notifier; once the
operation exists (``notifier.operation``), its events are tied to it in the ledger.

The webhook URL is a secret: it is never logged, printed or put into an exception message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ethixctl.ops.ledger import Ledger, Operation
from ethixctl.release.playbook import Notification


@dataclass
class Event:
    kind: str  # started, deployed, smoke, traffic, step, gate, warning, page, promoted, rolled_back, ...
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "at": self.at, "message": self.message, **self.data}


EventSink = Callable[[Event], None]


class Notifier:
    """Every event goes to the sink (console) and the ledger; the playbook's events also go to Slack."""

    def __init__(
        self,
        ledger: Ledger,
        subject: str,
        environment: str,
        sink: EventSink,
        targets: list[Notification],
        slack_webhook: str | None = None,
    ):
        self.ledger = ledger
        self.subject = subject
        self.environment = environment
        self.sink = sink
        self.operation: Operation | None = None
        self._slack_events = {e for t in targets if t.kind == "slack" for e in t.events}
        self._slack_webhook = slack_webhook

    def __call__(self, kind: str, message: str, **data: Any) -> None:
        operation = self.operation
        scope = {"service": self.subject, "operation": operation.id if operation else None}
        if operation is not None:
            scope[operation.kind] = operation.id
        event = Event(kind, message, {**scope, **data})
        self.ledger.record_event(
            self.subject, self.environment, kind, message, data, operation.id if operation else None
        )
        self.sink(event)
        if self._slack_webhook and kind in self._slack_events:
            self._slack(event)

    def _slack(self, event: Event) -> None:
        import httpx

        icon = {"promoted": ":white_check_mark:", "rolled_back": ":rewind:", "page": ":rotating_light:"}
        prefix = icon.get(event.kind, ":information_source:")
        text = f"{prefix} *{self.subject}* ({self.environment}): {event.message}"
        try:
            response = httpx.post(self._slack_webhook or "", json={"text": text}, timeout=5)
            problem = None if response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        if problem:
            # A notification failure must never change the release outcome; it is recorded and shown.
            warning = Event("warning", f"Slack notification failed ({problem})", {"service": self.subject})
            self.ledger.record_event(
                self.subject, self.environment, "warning", warning.message, {},
                self.operation.id if self.operation else None,
            )  # fmt: skip
            self.sink(warning)
