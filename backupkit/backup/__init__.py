"""Capture each database and pack one archive with its manifest; prove it; record the run."""
