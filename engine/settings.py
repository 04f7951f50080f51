"""Settings read from the environment (see shared/interface.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
CALENDAR_REGIONS = ("GB-ENG", "GB-WLS", "GB-SCT", "GB-NIR")


@dataclass(frozen=True)
class Settings:
    database_url: str
    calendar: str
    timezone: str
    smtp_url: str | None
    mail_from: str
    secret_key: str | None


def default_database_url() -> str:
    return f"sqlite:///{VAR_DIR / 'complaints.db'}"


def load() -> Settings:
    calendar = os.environ.get("COMPLAINTS_CALENDAR", "GB-ENG").strip().upper()
    if calendar not in CALENDAR_REGIONS:
        raise ValueError(
            f"COMPLAINTS_CALENDAR={calendar!r} is not one of {', '.join(CALENDAR_REGIONS)}"
        )
    return Settings(
        database_url=os.environ.get("COMPLAINTS_DATABASE_URL") or default_database_url(),
        calendar=calendar,
        timezone=os.environ.get("COMPLAINTS_TIMEZONE", "Europe/London"),
        smtp_url=os.environ.get("COMPLAINTS_SMTP_URL") or None,
        mail_from=os.environ.get("COMPLAINTS_MAIL_FROM", "complaints@localhost"),
        secret_key=os.environ.get("COMPLAINTS_SECRET_KEY") or None,
    )
