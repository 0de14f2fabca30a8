"""JUnit XML for CI systems: one ``testsuite`` per category, one ``testcase`` per step, cleanup included.

A failed assertion is a ``failure``; a network error is an ``error`` (the target did not answer,
which CI tools show apart from a test that ran and failed); steps not run are ``skipped``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ethixctl.files import write_atomic
from ethixctl.smoke.runner import SmokeReport, StepResult, StepStatus, status_counts


def to_xml(report: SmokeReport) -> ET.Element:
    """One ``testsuite`` per category (uncategorised steps under the suite's name), then ``cleanup``."""
    groups: dict[str, list[StepResult]] = {}
    for result in report.steps:
        groups.setdefault(result.category or report.suite, []).append(result)
    if report.cleanup:
        groups["cleanup"] = report.cleanup
    results = [*report.steps, *report.cleanup]
    suites = ET.Element(
        "testsuites",
        {
            "name": f"ethixctl smoke: {report.suite}",
            "tests": str(len(results)),
            "time": f"{report.duration:.3f}",
            **_counts(results),
        },
    )
    for name, members in groups.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            {
                "name": name,
                "tests": str(len(members)),
                "time": f"{sum(result.duration for result in members):.3f}",
                "timestamp": report.started_at.isoformat(timespec="seconds"),
                **_counts(members),
            },
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="base_url", value=report.base_url)
        ET.SubElement(properties, "property", name="run_id", value=report.run_id)
        for result in members:
            suite.append(_testcase(f"{report.suite}.{name}", result))
    ET.indent(suites)
    return suites


def _counts(results: list[StepResult]) -> dict[str, str]:
    counts = status_counts(results)
    return {
        "failures": str(counts["failed"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
    }


def _testcase(classname: str, result: StepResult) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=result.name, time=f"{result.duration:.3f}")
    message = result.reason or ""
    details = f"{result.method} {result.path}"
    if result.http_status is not None:
        details += f" -> HTTP {result.http_status}"
    if result.excerpt:
        details += f"\n{result.excerpt}"
    if result.status is StepStatus.FAILED:
        ET.SubElement(case, "failure", message=message, type="AssertionError").text = details
    elif result.status is StepStatus.ERROR:
        ET.SubElement(case, "error", message=message, type="NetworkError").text = details
    elif result.status is StepStatus.SKIPPED:
        ET.SubElement(case, "skipped", message=message)
    return case


def write(report: SmokeReport, path: str | Path) -> Path:
    """Write atomically, so a CI job never picks up half a file."""
    path = Path(path)
    write_atomic(path, ET.tostring(to_xml(report), encoding="utf-8", xml_declaration=True))
    return path
