"""Celery task modules. Each module is listed in celeryconfig.imports."""
