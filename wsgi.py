"""WSGI entry point (`gunicorn wsgi:app`); also lets `flask` find the app from the root."""

from ops_ui import create_app

app = create_app()
