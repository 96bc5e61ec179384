"""Failure intelligence (F2-F4, E3): fingerprints, groups, escalation and retention."""
