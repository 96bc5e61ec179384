"""The settings the running Flask app was built with (`create_app` stores them once).

Views, the CLI and helpers ask `app_settings()` rather than `get_settings()`, so a test
that builds an app with other settings sees them everywhere.
"""

from __future__ import annotations

from flask import Flask, current_app

from app.config import Settings

#: Where `create_app` keeps the settings in `app.extensions`.
EXTENSION_KEY = "celeriac_settings"


def install_settings(app: Flask, settings: Settings) -> None:
    """Attach `settings` to `app` (create_app does, once)."""
    app.extensions[EXTENSION_KEY] = settings


def app_settings() -> Settings:
    """The current app's settings; needs an app context."""
    value: Settings = current_app.extensions[EXTENSION_KEY]
    return value
