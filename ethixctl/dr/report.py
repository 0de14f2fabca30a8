"""A drill's record as a report: one dict (``--json``), Markdown for the audit trail, JUnit for CI.

Shaped like pgBackRest / Percona PBM reports: what was restored (snapshot, its point in time and newest
write), each step with its duration, every check with what it compared, the measured RTO and RPO
against the targets, what was cleaned up, and who ran it where.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from ethixctl.dr.drill import STEPS
from ethixctl.dr.playbook import Playbook
from ethixctl.durations import format_duration
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Operation

EXIT_CODES = {
    "passed": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "missed": ExitCode.OBJECTIVES_MISSED,
    "unverifiable": ExitCode.UNVERIFIABLE,
}
PLANNED_NOTE = "planned drill only: people run it; dr-drill does not execute it"


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def build(op: Operation, book: Playbook) -> dict[str, Any]:
    details = op.details
    steps = details.get("steps", {})
    return {
        "drill": op.id,
        "short_id": op.short_id,
        "environment": op.environment,
        "scenario": op.subject,
        "outcome": op.status,
        "reason": op.reason,
        "exit_code": int(EXIT_CODES.get(op.status, ExitCode.FAILED)),
        "user": op.user,
        "host": op.host,
        "started_at": _iso(op.started_at),
        "finished_at": _iso(op.finished_at),
        "incident_declared_at": _iso(details.get("incident_declared_at")),
        "incident_at": _iso(details.get("incident_at")),
        "snapshot": {"id": details.get("snapshot_id"), **details.get("snapshot", {})},
        "restore_job": details.get("restore_job"),
        "targets": details.get("targets", {}),
        "measured": {
            "rto_seconds": details.get("rto_measured"),
            "rpo_seconds": details.get("rpo_measured", details.get("rpo_seconds")),
            "newest_heartbeat": _iso(details.get("newest_heartbeat")),
        },
        "steps": [
            {"step": phase.value, "seconds": steps[phase.value]["seconds"]}
            for phase in STEPS
            if phase.value in steps
        ],
        "checks": details.get("checks", []),
        "failure": details.get("failure"),
        "objects": {
            "damage": details.get("damage", []),
            "recovered": details.get("objects_recovered", []),
            "copied": details.get("objects_copied", []),
        },
        "smoke": details.get("smoke"),
        "revision": details.get("revision"),
        "tag": details.get("tag"),
        "cleaned": details.get("cleaned"),
        "kept": details.get("kept"),
        "abandoned_cleaned": details.get("abandoned_cleaned", []),
        "planned_only": [
            {
                "scenario": s.name,
                "title": s.title,
                "rto_seconds": s.rto,
                "rpo_seconds": s.rpo,
                "note": PLANNED_NOTE,
            }
            for s in book.planned()
        ],
    }


def _value(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds:.1f} s"


def markdown(report: dict[str, Any]) -> str:
    targets, measured, snap = report["targets"], report["measured"], report["snapshot"]
    lines = [
        f"# DR drill {report['short_id']}: {report['scenario']} — {report['outcome'].upper()}",
        "",
        f"- environment: {report['environment']}; run by {report['user']} on {report['host']}",
        f"- started {report['started_at']}, finished {report['finished_at']}",
        f"- incident declared {report['incident_declared_at']} (incident time {report['incident_at']})",
        f"- snapshot {snap.get('id')}: point in time {snap.get('point_in_time')}, "
        f"newest write {snap.get('newest_write')}, {snap.get('documents')} documents",
        f"- outcome: {report['reason']}",
        "",
        "## Objectives",
        "",
        f"| | target ({targets.get('against')}) | measured | met |",
        "|---|---|---|---|",
    ]
    for name in ("rto", "rpo"):
        target, value = targets.get(f"{name}_seconds"), measured[f"{name}_seconds"]
        met = "yes" if value is not None and target is not None and value <= target else "no"
        lines.append(f"| {name.upper()} | {format_duration(target or 0)} | {_value(value)} | {met} |")
    lines += [
        "",
        f"RPO is measured from the newest heartbeat in the restored data: {measured['newest_heartbeat']}.",
        "",
    ]
    lines += ["## Steps", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {s['step']} | {s['seconds']:.3f} |" for s in report["steps"]]
    lines += ["", "## Verification", ""]
    if report["failure"]:
        lines += [f"**{report['failure']}**", ""]
    lines += ["| check | subject | result | detail |", "|---|---|---|---|"]
    lines += [
        f"| {c['kind']} | `{c['subject']}` | {'pass' if c['passed'] else 'FAIL'} | {c['detail']} |"
        for c in report["checks"]
    ]
    if report["objects"]["damage"]:
        lines += [
            "",
            "## Objects damaged in the scratch copy and recovered",
            "",
            "| object | damage | recovered from |",
            "|---|---|---|",
        ]
        sources = {r["name"]: r["source"] for r in report["objects"]["recovered"]}
        lines += [
            f"| `{d['name']}` | {d['damage']} | {sources.get(d['name'], '—')} |"
            for d in report["objects"]["damage"]
        ]
    if report["smoke"]:
        lines += [
            "",
            f"Smoke suite against tag `{report['tag']}` ({report['revision']}): "
            f"{report['smoke']['outcome']}.",
        ]
    cleaned = report["cleaned"] if report["cleaned"] is not None else report["kept"]
    lines += [
        "",
        f"Scratch resources {'cleaned up' if report['cleaned'] is not None else 'kept (--keep)'}: {cleaned}.",
    ]
    if report["abandoned_cleaned"]:
        lines += ["", f"Leftovers of interrupted drills cleaned up first: {report['abandoned_cleaned']}."]
    lines += ["", "## Not exercised by this tool", ""]
    lines += [
        f"- {p['title']}: RTO {format_duration(p['rto_seconds'])}, "
        f"RPO {format_duration(p['rpo_seconds'])} — {p['note']}"
        for p in report["planned_only"]
    ]
    return "\n".join(lines) + "\n"


def junit(report: dict[str, Any]) -> bytes:
    """One testcase per step and per check, plus RTO and RPO against their targets."""
    cases: list[ET.Element] = []
    for step in report["steps"]:
        cases.append(
            ET.Element(
                "testcase", classname="dr-drill.steps", name=step["step"], time=f"{step['seconds']:.3f}"
            )
        )
    for check in report["checks"]:
        case = ET.Element("testcase", classname=f"dr-drill.verify.{check['kind']}", name=check["subject"])
        if not check["passed"]:
            ET.SubElement(case, "failure", message=check["detail"], type="VerificationFailed")
        cases.append(case)
    for name in ("rto", "rpo"):
        target, value = report["targets"].get(f"{name}_seconds"), report["measured"][f"{name}_seconds"]
        case = ET.Element("testcase", classname="dr-drill.objectives", name=name.upper())
        if report["failure"]:
            ET.SubElement(case, "skipped", message=f"not reached: {report['failure']}")
        elif value is None or target is None or value > target:
            ET.SubElement(
                case,
                "failure",
                message=f"{name.upper()} {_value(value)} > target {target} s",
                type="ObjectiveMissed",
            )
        cases.append(case)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    suites = ET.Element("testsuites", name="ethixctl dr-drill")
    suite = ET.SubElement(
        suites, "testsuite", name=f"dr-drill {report['scenario']}", tests=str(len(cases)),
        failures=str(failures), errors="0", skipped=str(skipped), timestamp=report["started_at"] or "",
    )  # fmt: skip
    properties = ET.SubElement(suite, "properties")
    for key in ("drill", "environment", "outcome"):
        ET.SubElement(properties, "property", name=key, value=str(report[key]))
    suite.extend(cases)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
