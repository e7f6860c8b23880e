"""Reachability checks for /healthz. Each returns {"ok": bool, ...} and never raises.

A failed check says what is down in `error` (the kind of failure, no text
from the exception) and keeps the exception's own text in `detail`, which
the view shows to staff only: connection errors can name hosts, users and
database names.
"""

import time

from django.db import connection


def _failure(what: str, exc: Exception) -> dict:
    return {"ok": False, "error": f"{what} unreachable ({type(exc).__name__})", "detail": f"{type(exc).__name__}: {exc}"}


def check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # a health check reports failures instead of raising them
        return _failure("database", exc)
    return {"ok": True, "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 1)}


def check_broker() -> dict:
    from django.conf import settings

    from config.celery import app

    started = time.perf_counter()
    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:
        return _failure("broker", exc)
    return {"ok": True, "transport": str(transport), "ms": round((time.perf_counter() - started) * 1000, 1)}
