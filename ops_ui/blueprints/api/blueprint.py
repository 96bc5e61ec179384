"""The API blueprint every route module registers on (mounted at /api)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")
