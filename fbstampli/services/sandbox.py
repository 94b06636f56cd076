"""`fbstampli demo`: the whole flow against the embedded sandboxes, in a throw-away home.

It drives the same service functions the commands use, against a seeded
FreshBooks sandbox and an in-process SFTP server standing in for Stampli, and
reports each step through the `Show` callbacks the CLI passes in.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from fbstampli.options import Options
from fbstampli.report import RunReport

# The one gateway from services/ to the stand-ins (services/sandbox_businesses.py uses them too).
from fbstampli.sandbox.fb_data import Business as Business
from fbstampli.sandbox.freshbooks import FreshBooksSandbox as FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer as SftpServer
from fbstampli.sandbox.stampli import StampliSimulator

REDIRECT_URI = "https://localhost:8765/callback"


@dataclass(frozen=True, slots=True)
class Show:
    step: Callable[[str], None]
    note: Callable[[str], None]
    table: Callable[[str, Sequence[str], Sequence[Sequence[Any]]], None]


def sandbox_config(freshbooks: FreshBooksSandbox, business: str = "demo") -> str:
    """A config.toml pointing fbstampli at the FreshBooks sandbox."""
    return (
        "[freshbooks]\n"
        f'api_url = "{freshbooks.url}"\n'
        f'auth_url = "{freshbooks.url}"\n'
        f'client_id = "{freshbooks.client_id}"\n'
        f'client_secret = "{freshbooks.client_secret}"\n'
        f'redirect_uri = "{REDIRECT_URI}"\n'
        "[stampli]\n"
        f'business = "{business}"\n'
    )


SANDBOX_KEYS = ("api_url", "auth_url", "client_id", "client_secret", "redirect_uri")


def write_sandbox_config(home: Path, freshbooks: FreshBooksSandbox) -> str:
    """Point a home's config.toml at this sandbox, so a new terminal (or cron) needs nothing
    but FBSTAMPLI_HOME; returns the line that says what was written.

    The keys go right under the `[freshbooks]` header (any active line of the same key is
    commented out, so TOML never sees a key twice); a home without a config gets the
    commented default one first, which `fbstampli init` then keeps.
    """
    import re

    from fbstampli.services.admin import default_config_text

    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = home / "config.toml"
    text = config.read_text(encoding="utf-8") if config.exists() else default_config_text()
    values = {
        "api_url": freshbooks.url,
        "auth_url": freshbooks.url,
        "client_id": freshbooks.client_id,
        "client_secret": freshbooks.client_secret,
        "redirect_uri": REDIRECT_URI,
    }
    block = ["# written by `fbstampli sandbox freshbooks --write-config`"]
    block += [f'{key} = "{value}"' for key, value in values.items()]
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.strip() == "[freshbooks]"), None)
    if header is None:
        lines += ["", "[freshbooks]", *block]
    else:
        end = next(
            (i for i in range(header + 1, len(lines)) if lines[i].lstrip().startswith("[")),
            len(lines),
        )
        active = re.compile(rf"^\s*({'|'.join(SANDBOX_KEYS)})\s*=")
        for i in range(header + 1, end):
            if active.match(lines[i]):
                lines[i] = f"# {lines[i]}"
        lines[header + 1 : header + 1] = block
    from fbstampli.atomic import write_atomic

    # A random exclusive temporary, never a fixed name a link could be planted as.
    write_atomic(config, ("\n".join(lines) + "\n").encode("utf-8"))
    return (
        f"wrote this sandbox's address and app login into {config}: new terminals and cron "
        f"need only FBSTAMPLI_HOME={home}"
    )


def connect_home(
    options: Options,
    freshbooks: FreshBooksSandbox,
    server: SftpServer,
    business: str = "demo",
    *,
    business_id: int | None = None,
) -> list[str]:
    """init, config, auth login and auth sftp against the sandboxes; returns what each said.

    `business_id` picks one of the login's FreshBooks businesses, as `auth login --business`.
    """
    from fbstampli.services import admin, auth

    admin.init_home(options, key_source="file")
    from fbstampli.atomic import write_atomic

    write_atomic(options.paths().config, sandbox_config(freshbooks, business).encode("utf-8"))
    login = auth.auth_login(options, code=freshbooks.issue_code(REDIRECT_URI), business=business_id)
    pinned = auth.auth_sftp(
        options,
        host=server.host,
        port=server.port,
        username=server.username,
        password=server.password,
        accept_host_key=server.host_key.sha256_fingerprint,
    )
    return [
        f"fbstampli init: created the encrypted state in {options.paths().home}.",
        "fbstampli auth login --code …: " + " ".join(login.summary).split(" Next:")[0],
        "fbstampli auth sftp: " + " ".join(pinned.summary).split(" Next:")[0],
    ]


def _files(inbound: Path, names: Sequence[str]) -> list[tuple[str, int, str]]:
    rows = []
    for name in names:
        text = (inbound / name).read_text(encoding="utf-8")
        records = list(csv.reader(io.StringIO(text)))
        preview = ", ".join(records[1][:3]) if len(records) > 1 else ""
        rows.append((name, len(records) - 1, preview))
    return rows


def _counts(report: RunReport) -> str:
    from fbstampli.summaries import sentences

    return " ".join(sentences(report))


def run_demo(*, keep: bool, bills: int, show: Show) -> int:
    """Run every step; return the exit code (0 when each step did what it should)."""

    logging.getLogger("fbstampli.sandbox").setLevel(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-demo-"))
    home, root = folder / "home", folder / "stampli-sftp"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    options = Options(home=home, env={})
    try:
        with FreshBooksSandbox() as freshbooks, SftpServer(root) as server:
            freshbooks.seed(vendors=max(3, bills // 5), bills=bills, payments=bills // 3, seed=42)
            show.step(f"FreshBooks sandbox at {freshbooks.url}: {bills} bills seeded")
            show.step(f"Stampli stand-in: SFTP server on {server.host}:{server.port}")

            for line in connect_home(options, freshbooks, server):
                show.step(line)

            ok = _demo_pushes(options, freshbooks, root / "inbound", show)
            run_demo_exports(options, root, show)
            show.note("every step ran against local stand-ins; no account or network was used")
            return 0 if ok else 1
    finally:
        if keep:
            show.note(f"kept {folder} (--keep)")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _sent(inbound: Path) -> list[str]:
    """The files Stampli imports: dot-names (the marker, temporaries) are not for it."""
    return sorted(path.name for path in inbound.iterdir() if not path.name.startswith("."))


def _demo_pushes(
    options: Options, freshbooks: FreshBooksSandbox, inbound: Path, show: Show
) -> bool:
    """The demo's first half: push, push again (nothing sent twice), change a bill and push it;
    True when each push did what it should."""
    from fbstampli.services import sync as push

    first = push.push_bills(options, dry_run=False, full=False, since=None)
    names = _sent(inbound)
    show.step(f"fbstampli push-bills: {_counts(first)}")
    show.table(
        "Files in Stampli's inbound folder",
        ("file", "rows", "first row"),
        _files(inbound, names),
    )

    second = push.push_bills(options, dry_run=False, full=False, since=None)
    again = _sent(inbound)
    show.step(
        f"fbstampli push-bills again: {len(again) - len(names)} new files; "
        f"{second.counts.get('unchanged', 0)} objects unchanged, so nothing is sent twice."
    )

    bill_id = next(iter(sorted(freshbooks.data.bills)))
    freshbooks.update_bill(bill_id, bill_number=f"DEMO-{bill_id}-REVISED")
    third = push.push_bills(options, dry_run=False, full=False, since=None)
    changed = sorted(set(_sent(inbound)) - set(again))
    show.step(f"bill {bill_id} changed in FreshBooks; fbstampli push-bills: {_counts(third)}")
    show.table("Files sent for the update", ("file", "rows", "first row"), _files(inbound, changed))

    return (
        not first.problems
        and len(names) == 5  # categories, taxes, vendors, bills, payments
        and len(again) == len(names)
        and any(name.endswith("-bills.csv") for name in changed)
    )


def run_demo_exports(options: Options, root: Path, show: Show) -> None:
    """The demo's second half: Stampli captures, approves and pays; fbstampli pulls, reconciles."""
    from fbstampli.services import sync as pull

    simulator = StampliSimulator(root)
    bills = sorted(simulator.inbound_bills().values(), key=lambda b: b.fb_id)
    simulator.consume_inbound()
    simulator.export_captures(bills)
    now = simulator.now()
    decisions = [(b, "rejected" if i == 1 else "approved", now) for i, b in enumerate(bills[:4])]
    simulator.export_approvals(decisions)
    simulator.export_payments(
        [(bills[0], bills[0].total, bills[0].currency), (999_999, Decimal("10.00"), "USD")]
    )
    show.step(
        "Stampli stand-in captured every invoice, approved some, paid one and an unknown invoice"
    )
    report = pull.pull_stampli(options, now=True)
    show.step(f"fbstampli pull-stampli: {_counts(report)}")
    rows: list[list[Any]] = []

    def keep(report: RunReport, outcomes: Iterator[Mapping[str, Any]]) -> None:
        rows.extend(
            [i["fb_bill_id"], i["stampli_invoice_id"], i["outcome"], i["detail"]]
            for i in outcomes
            if i["outcome"] != "in_progress"
        )

    pull.reconcile(options, keep)
    show.table(
        "fbstampli reconcile (bills needing a look, and matches)",
        ("bill", "Stampli invoice", "outcome", "detail"),
        rows,
    )
