"""Worker registry, stuck and slow jobs, orphan reaper (M2, M3)."""
