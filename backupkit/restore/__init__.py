"""Restore: plan, prove, spool, place, journal; into a fresh directory or in place."""
