"""Preflight: the runbook's pre-release and pre-production checklists (``playbooks/preflight.yaml``),
checked against the environment before a release."""
