"""argparse types that more than one ``bulwark`` command takes (an error becomes the
command's one-line usage error, exit 2)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def iso_date(value: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is UTC."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {value[:40]!r}: use YYYY-MM-DD or an ISO 8601 time such as 2026-01-31T12:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def tenant_id(value: str) -> str:
    """A tenant id, checked as the server checks it."""
    from bulwark.server.credentials import validate_id

    try:
        return validate_id("tenant", value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
