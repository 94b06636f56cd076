"""Healthchecks-style pings around `sync`: /start, success, /fail with the one-line reason.

A ping never decides a run's outcome: a monitoring service that is down is a
logged warning, and the job's own error is what the operator sees.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable

from fbstampli.errors import FbstampliError
from fbstampli.logs import redact
from fbstampli.report import RunReport

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


def _shown(url: str) -> str:
    """`https://host/…`: where a ping went, without the path or query that carry its key."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or '?'}/…"
    except ValueError:
        return "the monitoring URL"


def ping(url: str, suffix: str = "", body: str = "") -> None:
    if not url:
        return
    target = url.rstrip("/") + suffix
    request = urllib.request.Request(  # noqa: S310 - an operator-configured http(s) URL
        target, data=body.encode("utf-8")[:10_000] if body else None, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):  # noqa: S310
            pass
    except (urllib.error.URLError, OSError, ValueError) as error:
        # The URL holds the monitor's key (healthchecks.io's uuid): only its host is logged.
        log.warning("monitoring ping to %s failed: %s", _shown(target), error)


def monitored(url: str, run: Callable[[], RunReport]) -> RunReport:
    """Run `run` between a start ping and a success or fail ping (with the reason)."""
    ping(url, "/start")
    try:
        report = run()
    except FbstampliError as error:
        ping(url, "/fail", redact(str(error)))
        raise
    if report.problems:
        ping(url, "/fail", redact("; ".join(report.problems)))
    else:
        ping(url)
    return report
