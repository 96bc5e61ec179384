"""Execution recording: task signals -> buffered Redis stream -> recorder -> SQL (E1, E2)."""
