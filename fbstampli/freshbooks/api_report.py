"""`fbstampli doctor --api-report FILE`: what FreshBooks answered, for a support person.

Each probe is one question the client depends on (docs/FRESHBOOKS-BEHAVIOUR.md
§6): the requests it made, with path and parameters (never headers,
so never the token), the status, the headers that matter (rate limits,
Retry-After), the *shape* of the body (keys and types, no values) and the
conclusion. Nothing from the account appears: the account id and object ids
are replaced by a hash salted per report, keys that are not field names
(some bodies key by account id) are replaced, and error texts are reduced to
the scope they name. Conclusions are reached in memory: writing a report
changes nothing the runs have learnt.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from fbstampli.errors import FbstampliError
from fbstampli.models.behaviour import (
    EMPTY_PAGES,
    LABELS,
    LIST_LINES,
    SORT_BILLS,
    SORT_VENDORS,
    VENDOR_IDS,
    VENDOR_TIMES,
    Fact,
    Learnt,
)

if TYPE_CHECKING:
    import requests

    from fbstampli.freshbooks.client import FreshBooksClient

REPORT_SCHEMA = 1
HEADERS_KEPT = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Content-Type",
)
PARAMS_KEPT = {"page", "per_page", "sort", "search[vis_state]", "include[]"}
_FIELD = re.compile(r"^[a-z][a-z0-9_]*$")
_SCOPE = re.compile(r"user:[a-z_]+:(?:read|write)")
MAX_DEPTH = 8


# Keys whose values name an account or a business (`business_memberships[].business.id` too).
_ID_KEYS = {"accountid", "businessid", "businessuuid"}


@dataclass(slots=True)
class Recorder:
    """Turns each response into a sanitised exchange; `account_id` never leaves it, nor any
    other account or business id a body showed (`seen`), wherever it turns up in the report."""

    account_id: str
    salt: str = field(default_factory=lambda: secrets.token_hex(8))
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def collect(self, value: object, depth: int = 0) -> None:
        """Remember every account and business id in a body (the identity answer lists all
        the login's businesses), to hide them in whatever exchange they appear."""
        if depth > MAX_DEPTH:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                name = str(key).replace("_", "").casefold()
                if name in _ID_KEYS and isinstance(item, str | int) and str(item):
                    self.seen.add(str(item))
                if name == "business" and isinstance(item, dict) and "id" in item:
                    self.seen.add(str(item["id"]))
                self.collect(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                self.collect(item, depth + 1)

    def sanitised(self, document: object) -> object:
        """`document` with every id seen replaced wherever it stands as a whole word: in
        paths, keys, headers and conclusions alike (the hook's own rules ran before some
        ids were known)."""
        ids = sorted({i for i in self.seen | {self.account_id} if i}, key=len, reverse=True)
        if not ids:
            return document
        pattern = re.compile(
            r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, ids)) + r")(?![A-Za-z0-9])",
            re.IGNORECASE,
        )
        current = self.account_id.casefold()

        def hide(text: str) -> str:
            return pattern.sub(
                lambda m: "{account_id}" if m.group().casefold() == current else "{other_id}",
                text,
            )

        def walk(value: object) -> object:
            if isinstance(value, dict):
                return {hide(str(k)): walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(item) for item in value]
            return hide(value) if isinstance(value, str) else value

        return walk(document)

    def hashed(self, value: str) -> str:
        digest = hashlib.sha256(f"{self.salt}:{value}".encode()).hexdigest()[:10]
        return f"#{digest}"

    def path(self, raw: str) -> str:
        parts = []
        for part in raw.split("/"):
            if self.account_id and part == self.account_id:
                parts.append("{account_id}")
            elif part.isdigit():
                parts.append("{id" + self.hashed(part) + "}")
            else:
                parts.append(part)
        return "/".join(parts)

    def params(self, query: str) -> list[list[str]]:
        return [
            [name, value if name in PARAMS_KEPT else self.hashed(value)]
            for name, value in parse_qsl(query, keep_blank_values=True)
        ]

    def key(self, name: object) -> str:
        text = str(name)
        if _FIELD.match(text) and text.casefold() != self.account_id.casefold():
            return text
        return "<key>"

    def shape(self, value: object, depth: int = 0) -> object:
        """Keys and types, never values: a list shows its first item's shape."""
        if depth > MAX_DEPTH:
            return "..."
        if isinstance(value, dict):
            return {self.key(k): self.shape(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.shape(value[0], depth + 1)] if value else []
        if value is None:
            return "null"
        return type(value).__name__

    def hook(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        parts = urlsplit(response.url)
        try:
            body: object = response.json()
        except ValueError:
            body = None
        self.collect(body)
        self.exchanges.append(
            {
                "method": response.request.method,
                "path": self.path(parts.path),
                "params": self.params(parts.query),
                "status": response.status_code,
                "headers": {h: response.headers[h] for h in HEADERS_KEPT if h in response.headers},
                "body_shape": self.shape(body) if body is not None else None,
            }
        )


def _failure(error: FbstampliError) -> str:
    """An error as a conclusion: its kind and any scope it names, not its text (ids, names)."""
    scopes = sorted(set(_SCOPE.findall(str(error))))
    named = f"; scope to enable: {', '.join(scopes)}" if scopes else ""
    return f"failed ({type(error).__name__}, exit {int(error.exit_code)}){named}"


def _fact_text(fact: Fact | None) -> str:
    return "could not tell from this account's data" if fact is None else fact.value


class _Questions:
    """What each probe asks of FreshBooks, and its conclusion in a line."""

    def __init__(self, client: FreshBooksClient, learnt: Learnt, stored: dict[str, Fact]):
        self.client = client
        self.learnt = learnt
        self.stored = stored

    def identity(self) -> str:
        self.client.me()
        return "the token works"

    def sort(self, resource: str, fact: str) -> Callable[[], str]:
        def act() -> str:
            verdict = self.client.probe_sort(resource)
            if verdict is not None:
                self.learnt.learn(fact, verdict)
            return f"{LABELS[fact]}: {_fact_text(self.learnt.facts.get(fact))}"

        return act

    def vendor_ids(self) -> str:
        first = next(self.client.list_vendors(), None)
        if first is None:
            return "no vendors to ask for"
        self.client.get_vendors([first.fb_id])
        return f"{LABELS[VENDOR_IDS]}: {_fact_text(self.learnt.facts.get(VENDOR_IDS))}"

    def lines(self) -> str:
        if next(self.client.list_bills(), None) is None:
            return "no bills to look at"
        return f"{LABELS[LIST_LINES]}: {_fact_text(self.learnt.facts.get(LIST_LINES))}"

    def payments(self) -> str:
        next(self.client.list_bill_payments(), None)
        return "bill payments can be listed"

    def vendor_times(self) -> str:
        fact = self.stored.get(VENDOR_TIMES)
        return f"{LABELS[VENDOR_TIMES]}: {_fact_text(fact)} (learnt by runs)"

    def empty(self) -> str:
        fact = self.learnt.facts.get(EMPTY_PAGES) or self.stored.get(EMPTY_PAGES)
        return f"{LABELS[EMPTY_PAGES]}: {_fact_text(fact)}"

    def all(self) -> list[tuple[str, str, Callable[[], str]]]:
        return [
            ("identity", "does the token reach the identity endpoint?", self.identity),
            (
                "sort bills",
                "is sort=updated_at_desc/_asc honoured on bills?",
                self.sort("bills", SORT_BILLS),
            ),
            (
                "sort vendors",
                "is sort=updated_at_desc/_asc honoured on bill_vendors?",
                self.sort("bill_vendors", SORT_VENDORS),
            ),
            ("vendor ids filter", "does search[ids][] filter bill_vendors?", self.vendor_ids),
            ("bill lines", "do bill list responses carry `lines`?", self.lines),
            ("bill payments", "can bill payments be listed (scope)?", self.payments),
            (
                "vendor times",
                "are vendor timestamps UTC? (needs a webhook beside a change)",
                self.vendor_times,
            ),
            ("empty pages", "what does an empty list say in `pages`?", self.empty),
        ]


def run_probes(
    client: FreshBooksClient, recorder: Recorder, stored: dict[str, Fact]
) -> list[dict[str, Any]]:
    """Each probe's exchanges and conclusion; one failing probe does not stop the others."""
    learnt = Learnt()  # in memory: a report must not change what the runs act on
    client.learnt = learnt
    probes: list[dict[str, Any]] = []
    for name, question, act in _Questions(client, learnt, stored).all():
        start = len(recorder.exchanges)
        try:
            conclusion = act()
        except FbstampliError as error:
            conclusion = _failure(error)
        probes.append(
            {
                "probe": name,
                "question": question,
                "requests": recorder.exchanges[start:],
                "conclusion": conclusion,
            }
        )
    return probes


def report_for(
    open_client: Callable[[requests.Session], FreshBooksClient],
    destination: Path,
    account_id: str,
    stored: dict[str, Fact],
) -> int:
    """Probe the logged-in account through a session that records, and write the report.

    `open_client` builds the client on that session (the caller knows where the token is kept).
    """
    import requests

    session = requests.Session()
    client = open_client(session)
    try:
        return write_report(destination, client, session, account_id, stored)
    finally:
        client.close()


def write_report(
    destination: Path,
    client: FreshBooksClient,
    session: requests.Session,
    account_id: str,
    stored: dict[str, Fact],
) -> int:
    """Run the probes through `session` (its response hook records) and write the report."""
    recorder = Recorder(account_id)
    session.hooks["response"].append(recorder.hook)
    probes = run_probes(client, recorder, stored)
    document = recorder.sanitised(
        {"schema": REPORT_SCHEMA, "ids": "salted hashes, salt not kept", "probes": probes}
    )
    from fbstampli.atomic import write_atomic

    # Beside and renamed over, through a random exclusive temporary: never through a link.
    write_atomic(destination, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    return len(probes)
