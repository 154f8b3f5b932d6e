"""Degradations, degraded Re-ID datasets, stage-1 pair data and protocols."""
