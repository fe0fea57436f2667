"""Flask extensions, created unbound here and initialised in `create_app`."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_talisman import Talisman
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints, so Alembic migrations work the same on SQLite and PostgreSQL.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)

# The webhook intake's own engine (a Flask-SQLAlchemy bind to the same database, no tables of its own):
# its connections are in autocommit from the start and nothing is reset when they go back to the pool,
# so a delivery's one INSERT costs one statement, not the isolation level set and reset around it.
INTAKE_ENGINE = "intake"


def intake_engine_bind(database_url: str) -> dict:
    """SQLALCHEMY_BINDS' entry for the intake engine."""
    return {"url": database_url, "isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
talisman = Talisman()
