"""Flask extensions owned by the web process."""

from __future__ import annotations

from typing import cast

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect
from sqlalchemy.orm import Session

from app.db import db

csrf = CSRFProtect()
login_manager = LoginManager()
migrate = Migrate()


def sql() -> Session:
    """The request's SQLAlchemy session (Flask-SQLAlchemy's scoped session), typed plainly."""
    return cast(Session, db.session)
