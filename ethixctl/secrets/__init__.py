"""Secrets as code: the catalog (``playbooks/secrets.yaml``), value generation, and rotations."""
