"""Gunicorn settings for the dispatch-latency run: the project's gunicorn.conf.py minus
its fixed port, access log and per-checkout control socket (a `make run` may own those).
"""

workers = 2
threads = 4
graceful_timeout = 10
accesslog = None
control_socket_disable = True
