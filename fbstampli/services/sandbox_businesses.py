"""`fbstampli sandbox demo --businesses N`: one installation of several businesses against
local stand-ins, one listener, a Stampli SFTP target per business (the single-home demo and
the shared pieces are in `services/sandbox.py`)."""

from __future__ import annotations

import csv
import io
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.services.sandbox import (
    Business,
    FreshBooksSandbox,
    SftpServer,
    Show,
    connect_home,
)

DEMO_NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
EVENT_WAIT_SECONDS = 30.0


def run_business_demo(*, keep: bool, bills: int, businesses: int, show: Show) -> int:
    """Several FreshBooks businesses on one sandbox login, each with its own Stampli SFTP
    target, in one installation: `business add`, `sync --all`, then one listener that
    routes each business's webhook to its own state and Stampli inbound only."""
    from contextlib import ExitStack

    from fbstampli.services.sync_all import sync_all

    logging.getLogger("fbstampli.sandbox").setLevel(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-demo-"))
    installation = Options(home=folder / "installation", env={})
    names = DEMO_NAMES[:businesses]
    accounts = [
        Business(f"ACCT{index + 1:02d}", 100_000 * (index + 1), f"{name.title()} Ltd.")
        for index, name in enumerate(names)
    ]
    try:
        with ExitStack() as stack:
            freshbooks = stack.enter_context(
                FreshBooksSandbox(businesses=accounts, emit_events=True)
            )
            demo = _BusinessDemo(installation, freshbooks, dict(zip(names, accounts, strict=True)))
            for index, (name, account) in enumerate(demo.accounts.items()):
                freshbooks.accounts[account.account_id].seed(
                    vendors=3, bills=bills, payments=0, seed=42 + index
                )
                root = folder / f"stampli-{name}"
                for sub in ("inbound", "outbound"):
                    (root / sub).mkdir(parents=True)
                demo.servers[name] = stack.enter_context(SftpServer(root))
            show.step(
                f"FreshBooks sandbox at {freshbooks.url}: one login, {businesses} businesses "
                f"({', '.join(a.name for a in accounts)}), {bills} bills each"
            )
            demo.add_businesses(show)
            result = sync_all(installation)
            show.step(f"fbstampli sync --all: exit {result.exit_code}")
            show.table(
                "Files in each business's Stampli inbound",
                ("business", "files", "bills"),
                [(name, *_inbound_summary(demo.servers[name])) for name in names],
            )
            isolated, arrived = demo.webhook_round(show)
            show.note("every step ran against local stand-ins; no account or network was used")
            ok = result.exit_code == 0 and arrived == len(names) and isolated
            return 0 if ok else 1
    finally:
        if keep:
            show.note(f"kept {folder} (--keep)")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _BusinessDemo:
    """The installation demo's cast: its businesses' FreshBooks accounts and SFTP servers."""

    installation: Options
    freshbooks: FreshBooksSandbox
    accounts: dict[str, Any]  # name -> fb_data.Business
    servers: dict[str, SftpServer] = field(default_factory=dict)

    def options(self, name: str) -> Options:
        from fbstampli.installation import Installation, business_options

        folder = self.installation.installation_folder()
        return business_options(self.installation, Installation(folder).business(name))

    def add_businesses(self, show: Show) -> None:
        from fbstampli.services import business as several

        for name, account in self.accounts.items():
            several.business_add(self.installation, name, key_source="file")
            connect_home(
                self.options(name),
                self.freshbooks,
                self.servers[name],
                business=name,
                business_id=account.business_id,
            )
            show.step(
                f"fbstampli business add {name}: its own home, key and state; logged in to "
                f"{account.name}; its own Stampli SFTP server (port {self.servers[name].port})"
            )

    def webhook_round(self, show: Show) -> tuple[bool, int]:
        """One listener, a new bill in each business: (each reached only its own inbound, how
        many arrived in time)."""
        from fbstampli.services import webhooks_all

        report = RunReport("serve-webhook")
        with webhooks_all.installation_listener(
            self.installation, host="127.0.0.1", port=0, report=report
        ) as listener:
            show.step(f"fbstampli serve-webhook --all: one port, {listener.address[1]}")
            self._register(listener, show)
            new_bills, arrived = self._new_bills(show)
        names = list(self.accounts)
        isolated = all(
            new_bills[other] not in _bill_numbers(self.servers[name])
            for name in names
            for other in names
            if other != name
        )
        show.table(
            "Webhook to Stampli, per business",
            ("business", "new bill", "in its inbound after", "in any other inbound"),
            [
                (
                    name,
                    new_bills[name],
                    f"{arrived[name]:.1f} s" if name in arrived else "not yet",
                    "no" if isolated else "YES",
                )
                for name in names
            ],
        )
        return isolated, len(arrived)

    def _register(self, listener: Any, show: Show) -> None:
        from fbstampli.services.webhooks import webhooks_register

        for name in self.accounts:
            registered = webhooks_register(self.options(name), url=listener.url(name))
            show.step(
                f"fbstampli --business {name} webhooks register --url {listener.url(name)}"
                f": {registered.counts.get('verified', 0)} callbacks verified"
            )

    def _new_bills(self, show: Show) -> tuple[dict[str, str], dict[str, float]]:
        """A new bill in each business, and how long each took to reach its inbound."""
        import time

        started = time.monotonic()
        new_bills: dict[str, str] = {}
        for name, account in self.accounts.items():
            data = self.freshbooks.accounts[account.account_id]
            number = f"WEBHOOK-{name.upper()}"
            data.create_bill(next(iter(sorted(data.vendors))), bill_number=number)
            new_bills[name] = number
        show.step("a new bill in each business; FreshBooks sends each its webhook")
        arrived: dict[str, float] = {}
        while len(arrived) < len(new_bills) and time.monotonic() - started < EVENT_WAIT_SECONDS:
            for name, number in new_bills.items():
                if name not in arrived and number in _bill_numbers(self.servers[name]):
                    arrived[name] = time.monotonic() - started
            time.sleep(0.1)
        return new_bills, arrived


def _bill_numbers(server: SftpServer) -> set[str]:
    numbers: set[str] = set()
    for path in (server.root / "inbound").glob("*-bills.csv"):
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
            numbers.add(row.get("Invoice Number") or "")
    return numbers - {""}


def _inbound_summary(server: SftpServer) -> tuple[int, int]:
    return len(list((server.root / "inbound").iterdir())), len(_bill_numbers(server))
