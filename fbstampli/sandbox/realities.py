"""The ways the real FreshBooks may differ from what fbstampli was written for.

Each name is one unconfirmed assumption (issue 15, docs/FRESHBOOKS-BEHAVIOUR.md
§6) acted out the other way, so tests, the demo and `fbstampli
sandbox freshbooks --reality` can prove the client notices and stays correct.
Test-only, like the rest of the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable

from fbstampli.errors import ConfigError

REALITIES: dict[str, str] = {
    "sort-ignored": "sort=updated_at_desc is ignored; lists come newest-created first",
    "sort-rejected": "sort=updated_at_desc is refused with HTTP 400",
    "vendor-ids-ignored": "search[ids][] on bill_vendors is ignored: every vendor comes back",
    "vendor-ids-rejected": "search[ids][] on bill_vendors is refused with HTTP 400",
    "lines-omitted": "bill list responses carry no `lines` (nor `bill_payments`); GET by id does",
    "vendor-times-ny": "vendor created_at/updated_at are America/New_York wall-clock times",
    "empty-pages-zero": "an empty list answers pages: 0",
    "scope-missing": "the app is not registered for user:bill_vendors:read",
    "payments-still": "a bill's updated_at stays put when its payments change",
    "billid-ignored": "search[billid] on bill_payments is ignored: every payment comes back",
    "coding-scopes-missing": "the login's grant lacks user:expenses:read and user:taxes:read "
    "(given before they were asked for): the expense categories and taxes answer 403",
}
# `all` is every reality each run keeps Stampli in step under. A missing scope stops sync by
# design; under still payments, a changed payment reaches Stampli at the next full sweep
# (which then switches to listing every payment), not at the next run.
ALL = tuple(
    name
    for name in REALITIES
    if name not in ("scope-missing", "payments-still", "coding-scopes-missing")
)
MISSING_SCOPE = "user:bill_vendors:read"
CODING_SCOPES = ("user:expenses:read", "user:taxes:read")


def parse_realities(text: str | Iterable[str]) -> frozenset[str]:
    """`sort-ignored,lines-omitted`, `all` or a list of names, as a set; unknown ones refused."""
    names = text.split(",") if isinstance(text, str) else list(text)
    chosen: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name or name == "none":
            continue
        if name == "all":
            chosen.update(ALL)
        elif name in REALITIES:
            chosen.add(name)
        else:
            known = ", ".join([*REALITIES, "all"])
            raise ConfigError(f"--reality {name!r} is not one of: {known}")
    return frozenset(chosen)
