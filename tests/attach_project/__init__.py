"""A Celery project of its own, unaware of Celeriac (attach mode's integration test)."""
