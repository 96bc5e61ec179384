"""Celeriac core: config, models, services, the Celery app and the execution recorder."""

__version__ = "0.1.0"
