"""What a single setting's value may be: a file or environment value coerced to its field's
type, and a URL's host read the way the HTTP client that connects will read it.

Also the checks of a whole section that need nothing else (reconcile's tolerances, the
digest). Pure and free of `Settings`, so `config.py` keeps only the sections and their merging.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse


def convert(raw: object, target: Any, key: str, problems: list[str]) -> object:
    """Coerce a file or environment value to the field's type, or note why not."""
    if target in (bool, "bool"):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return raw.lower() in ("1", "true", "yes", "on")
        problems.append(f"{key}: must be true or false")
        return None
    if target in (int, "int"):
        if isinstance(raw, bool):
            problems.append(f"{key}: must be a whole number")
            return None
        try:
            return int(str(raw))
        except ValueError:
            problems.append(f"{key}: must be a whole number")
            return None
    if target in (float, "float"):
        try:
            number = float(str(raw))
        except ValueError:
            problems.append(f"{key}: must be a number")
            return None
        if not math.isfinite(number):  # "nan" and "inf" parse, and pass any comparison test
            problems.append(f"{key}: must be a finite number")
            return None
        return number
    if isinstance(raw, str):
        return raw
    problems.append(f"{key}: must be text")
    return None


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_of(url: str) -> tuple[str, str | None]:
    """(scheme, host) of a URL as the HTTP client that connects reads it; no host when it has
    none, cannot be read (`[::1`, `:x`), or could be read two ways.

    `http://127.1:18902\\@127.0.0.1` is 127.0.0.1 to urllib.parse and 127.1 to urllib3, so
    user-info, backslashes, whitespace and control characters are refused outright, and the
    host is taken from urllib3's parser (the one requests connects with).
    """
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    if "\\" in url or "@" in url or any(c.isspace() or not c.isprintable() for c in url):
        return "", None
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises on a port that is not a number or out of range
        connects = parse_url(url)
    except (ValueError, LocationParseError):
        return "", None
    host = (connects.host or "").strip("[]").lower() or None
    if host != (parsed.hostname or None) or connects.auth:
        return "", None
    return parsed.scheme, host


def tolerance_problems(reconcile: Any) -> list[str]:
    """`reconcile.tolerance_*` must be plain amounts, zero or more; the window 0 days or more."""
    problems = []
    for key in ("tolerance_amount", "tolerance_percent"):
        try:
            value = Decimal(str(getattr(reconcile, key)).strip())
            good = value.is_finite() and value >= 0
        except InvalidOperation:
            good = False
        if not good:
            problems.append(f"reconcile.{key}: must be an amount of 0 or more, such as 0.05")
    if reconcile.payment_window_days < 0:
        problems.append("reconcile.payment_window_days: must be 0 or more")
    return problems


def digest_problems(digest: Any) -> list[str]:
    """What is wrong with the [digest] section, by dotted key (addresses checked for shape
    only: the relay says whether they exist)."""
    import re
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    problems = []
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", digest.send_at):
        problems.append("digest.send_at: must be a time of day as HH:MM, such as 07:00")
    try:
        ZoneInfo(digest.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append("digest.timezone: must be a time zone name, such as America/Toronto")
    for key, value in (("digest.to", digest.to), ("digest.sender", digest.sender)):
        addresses = [a.strip() for a in value.split(",")] if value.strip() else []
        if key == "digest.sender" and len(addresses) > 1:
            problems.append(f"{key}: must be one address")
        for address in addresses:
            if not re.fullmatch(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+", address):
                problems.append(f"{key}: {address!r} is not an e-mail address")
        if digest.enabled and not addresses:
            problems.append(f"{key}: must be set when digest.enabled is true")
    return problems
