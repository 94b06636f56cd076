"""Where push-bills stands between runs: `--since`, the last full sweep, the watermarks.

Each is a value in the state, written only once what it stands for is committed
(`sync.push.record_and_deliver`), so a run killed half way is read again whole.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fbstampli.clock import Clock, from_utc_text
from fbstampli.config import Settings
from fbstampli.errors import ConfigError
from fbstampli.models import Kind
from fbstampli.store import Store
from fbstampli.sync.payments import SWEEP_KEY

SINCE_KEY = "push.since"
WATERMARK_KEYS = {Kind.VENDOR: "push.watermark.vendor", Kind.BILL: "push.watermark.bill"}


def parse_since(text: str | None, store: Store) -> date | None:
    """`--since` is remembered, so later runs keep leaving older bills out."""
    if text:
        try:
            since = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"--since {text!r}: expected a date like 2026-01-31") from None
        with store.transaction():
            store.put_value(SINCE_KEY, since.isoformat())
        return since
    stored = store.get_value(SINCE_KEY)
    return date.fromisoformat(stored) if stored else None


def sweep_due(
    store: Store, settings: Settings, clock: Clock, *, full: bool, first_run: bool
) -> bool:
    """A full sweep (deleted objects too) on request, or when the last is old enough.

    The very first run has nothing to sweep for: a deletion only matters for
    an object we have sent, and nothing has been sent yet.
    """
    if first_run:
        return False
    if full:
        return True
    last = store.get_value(SWEEP_KEY)
    if last is None:
        return True
    age = clock.now() - from_utc_text(last)
    return age >= timedelta(hours=settings.sync.full_sweep_hours)


def load_watermarks(store: Store) -> dict[Kind, datetime]:
    marks: dict[Kind, datetime] = {}
    for kind, key in WATERMARK_KEYS.items():
        text = store.get_value(key)
        if text:
            marks[kind] = datetime.fromisoformat(text)
    return marks


def save_watermarks(store: Store, marks: dict[Kind, datetime]) -> None:
    for kind, mark in marks.items():
        store.put_value(WATERMARK_KEYS[kind], mark.isoformat())
