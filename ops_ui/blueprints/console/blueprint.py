"""The console blueprint every page module registers on."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__)
