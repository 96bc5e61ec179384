"""The real backends (Celery, Redis) behind app.kernel.ports, their in-memory twins, and the
one accessor through which this process reaches the ones in use (`current.backends()`)."""
