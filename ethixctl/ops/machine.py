"""The shape every long operation shares: an explicit, persisted state machine.

An operation's phases are a ``StrEnum``. ``transitions`` says which phase may follow which, ``final``
which phases end the operation and with what status. ``Machine.run`` calls the handler of the
operation's current phase; the handler does that phase's work and returns the next phase. Every move
goes through one place: it is checked against the table, an event is written before the phase's work
starts and the phase is moved after it ends, in one transaction that fails if something else (a
manual rollback) ended the operation meanwhile.

Resume rule, the same for every phase: whatever killed the process, the ledger says which phase was
running, and ``run`` calls that phase's handler again. Handlers are therefore idempotent: they record
progress in ``op.details`` / ``op.step`` / ``op.counters`` as they go and check it on entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from ethixctl.ops.ledger import Ledger, Operation

P = TypeVar("P", bound=StrEnum)
Handler = Callable[[Operation], P]


class IllegalTransition(RuntimeError):
    """A handler asked for a move the table does not allow: a bug, never an operator's mistake."""


class Ended(Exception):
    """The operation was ended from outside while a phase ran (e.g. ``ethixctl rollback``)."""


class Machine(Generic[P]):
    def __init__(
        self,
        ledger: Ledger,
        phases: type[P],
        transitions: Mapping[P, frozenset[P]],
        final: Mapping[P, str],
    ):
        missing = [p for p in phases if p not in transitions and p not in final]
        if missing:
            raise ValueError(f"phases with no transitions and not final: {missing}")
        self.ledger = ledger
        self.phases = phases
        self.transitions = transitions
        self.final = final

    def allowed(self, source: P, target: P) -> bool:
        return target in self.transitions.get(source, frozenset())

    def run(self, op: Operation, handlers: Mapping[P, Handler[P]]) -> Operation:
        """Drive ``op`` until a final phase (or until it is ended from outside); returns its last record."""
        while True:
            op = self.ledger.operation(op.id)
            phase = self.phases(op.phase)
            if not op.in_progress or phase in self.final:
                return op
            self.ledger.event(op, "phase", f"{op.kind} {op.short_id}: {phase.value}", {"phase": phase.value})
            try:
                target = handlers[phase](op)
            except Ended:
                return self.ledger.operation(op.id)
            if not self.allowed(phase, target):
                raise IllegalTransition(f"{op.kind} cannot move from {phase.value} to {target.value}")
            if not self.ledger.move(op.id, phase.value, target.value, self.final.get(target)):
                return self.ledger.operation(op.id)

    def check_in_progress(self, op: Operation) -> None:
        """Raise ``Ended`` when something else ended ``op``: long phases call this while they wait."""
        if not self.ledger.operation(op.id).in_progress:
            raise Ended(op.id)
