"""The smoke suite: model (playbooks/smoke.yaml), runner, JUnit writer, watch loop, metrics.

Library entry point for the release engine::

    from ethixctl.smoke import run_suite
    report = run_suite(canary_tag_url)
    if not report.passed: ...
"""

from ethixctl.smoke.model import DEFAULT_SUITE, Suite, load_suite
from ethixctl.smoke.runner import SmokeReport, StepResult, StepStatus, run_suite

__all__ = ["DEFAULT_SUITE", "SmokeReport", "StepResult", "StepStatus", "Suite", "load_suite", "run_suite"]
