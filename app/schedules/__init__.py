"""Cron schedules on RedBeat (S1-S4): cron maths, entries, claims, fires, reconcile."""
