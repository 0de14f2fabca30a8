"""Canary releases as code: the playbook model, statistics, analysis, ledger, lock and orchestration."""
