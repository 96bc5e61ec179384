"""Flask extensions owned by the web process."""

from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
migrate = Migrate()
