"""Unattended use: the ledger, the catalogue, retention, prune, status, schedule, snapshots."""
