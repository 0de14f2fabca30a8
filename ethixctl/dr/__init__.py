"""Disaster recovery: the DR playbook, snapshots, restores and drills (backup, restore, dr-drill)."""
