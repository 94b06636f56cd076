"""An embedded FreshBooks API server for tests, the demo and benchmarks.

Speaks the documented shapes (docs/FRESHBOOKS-BEHAVIOUR.md): OAuth with single-use rotating
refresh tokens, identity, bills/vendors/payments with paging and filters, the
callbacks API with signed webhook deliveries. Tests steer it through fault
rules, holds, counters and the mutation API. Never for production.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from fbstampli.errors import ConfigError
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign
from fbstampli.sandbox.documents import Uploads, attach_seeded
from fbstampli.sandbox.fb_data import AccountData, AuthState, Business, CallbackRecord
from fbstampli.sandbox.fb_http import (
    DEFAULT_SCOPE,
    Fault,
    FaultRate,
    Handler,
    Hold,
    RequestRecord,
    request_kind,
)
from fbstampli.sandbox.realities import CODING_SCOPES, MISSING_SCOPE, parse_realities
from fbstampli.signals import stop_signals

__all__ = [
    "Business",
    "Delivery",
    "Fault",
    "FaultRate",
    "FreshBooksSandbox",
    "Hold",
    "RequestRecord",
    "main",
    "run_sandbox",
]

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Delivery:
    callback_id: int
    uri: str
    form: tuple[tuple[str, str], ...]
    status: int | None  # None: the receiver could not be reached
    error: str = ""


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer (the fault trials do it on purpose) is logged, not
        printed: socketserver writes to whatever `sys.stderr` is current, which, in a process
        that also runs the command line (the demo, the tests), is that command's stderr."""
        log.debug("sandbox: a request from %s failed: %r", client_address, sys.exc_info()[1])


class FreshBooksSandbox:
    """The server and its steering wheel. `with FreshBooksSandbox() as fb: fb.url`.

    `data` is the first business's account (seed and mutate it); `auth` holds
    the OAuth grants. Faults, holds, counters and the request log are thread-safe.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        businesses: Sequence[Business] | None = None,
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",  # noqa: S107 - a well-known test value
        access_token_lifetime: int = 43200,
        latency: float = 0.0,
        emit_events: bool = False,
        honour_sort: bool = True,
        realities: str | Iterable[str] = (),
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.now = now or (lambda: datetime.now(UTC))
        self.businesses = list(businesses or [Business("ABC123", 439000, "Sandbox Supplies Ltd.")])
        self.accounts = {b.account_id: AccountData(b.account_id, self.now) for b in self.businesses}
        self.account_id = self.businesses[0].account_id
        self.data = self.accounts[self.account_id]
        self.auth = AuthState(client_id, client_secret, access_token_lifetime, self.now)
        self.client_id = client_id
        self.client_secret = client_secret
        self.latency = latency
        # FreshBooks' support for `sort=updated_at_desc` on bills and vendors is
        # unconfirmed; False plays an API that ignores it, so the fallback is tested.
        self.honour_sort = honour_sort
        self._realities: frozenset[str] = frozenset()
        self.realities = parse_realities(realities)
        self.callbacks: dict[str, dict[int, CallbackRecord]] = {a: {} for a in self.accounts}
        self.uploads = Uploads()
        self.deliveries: list[Delivery] = []
        self._faults: list[Fault] = []
        self.fault_rate: FaultRate | None = None  # background faults; one-shot ones go first
        self._holds: list[Hold] = []
        self._log: list[RequestRecord] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._next_callback_id = 1
        if emit_events:
            for account in self.accounts.values():
                # Each account announces its own changes: with several businesses on one
                # login, an event must name the account that changed, not the first one.
                account.on_change = functools.partial(self._announce, account.account_id)
        self._server = _QuietServer((host, port), Handler)
        self._server.daemon_threads = True
        self._server.sandbox = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def realities(self) -> frozenset[str]:
        """Which unconfirmed assumptions this sandbox acts out the other way (`realities.py`)."""
        return self._realities

    @realities.setter
    def realities(self, chosen: frozenset[str]) -> None:
        self._realities = frozenset(chosen)
        zone = ZoneInfo("America/New_York") if "vendor-times-ny" in chosen else UTC
        for account in self.accounts.values():
            account.vendor_zone = zone
            account.payments_move_bill = "payments-still" not in chosen

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> FreshBooksSandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release every hold, stop serving and free the port; safe on a never-started sandbox."""
        with self._lock:
            holds = list(self._holds)
        for hold in holds:
            hold.release()
        if self._thread is not None:
            self._server.shutdown()  # blocks until serve_forever returns: only if it runs
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FreshBooksSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- seeding and mutation (the first account) ---------------------------------------------

    def seed(
        self, *, vendors: int = 10, bills: int = 50, payments: int = 20, seed: int = 1
    ) -> None:
        self.data.seed(vendors=vendors, bills=bills, payments=payments, seed=seed)

    def seed_documents(self, *, max_bytes: int, seed: int = 1) -> dict[int, str]:
        """Give the first live bills documents: PDF and JPEG scans of `SIZES`, then one PDF
        over `max_bytes` and one GIF (a refused type). Bill id -> what it was given."""
        return attach_seeded(self, self.data.bills, max_bytes=max_bytes, seed=seed)

    def create_vendor(self, vendor_name: str = "New Vendor", **fields: Any) -> int:
        return self.data.create_vendor(vendor_name, **fields)

    def update_vendor(self, vendor_id: int, **changes: Any) -> None:
        self.data.update_vendor(vendor_id, **changes)

    def update_category(self, category_id: int, **changes: Any) -> None:
        """Rename (`category=`), re-parent (`parentid=`), archive or delete an expense category."""
        self.data.update_category(category_id, **changes)

    def update_tax(self, tax_id: int, **changes: Any) -> None:
        """Rename (`name=`), re-rate (`amount=`), archive or delete a tax."""
        self.data.update_tax(tax_id, **changes)

    def create_category(self, name: str, parent_id: int | None = None) -> int:
        return self.data.create_category(name, parent_id)

    def delete_vendor(self, vendor_id: int) -> None:
        self.data.delete_vendor(vendor_id)

    def create_bill(self, vendorid: int, **fields: Any) -> int:
        return self.data.create_bill(vendorid, **fields)

    def update_bill(self, bill_id: int, **changes: Any) -> None:
        self.data.update_bill(bill_id, **changes)

    def attach_document(self, bill_id: int, content: bytes, media_type: str) -> str:
        """Give the bill a (new) document, as a user uploading it in FreshBooks; its JWT."""
        attachment = self.uploads.add(content, media_type)
        self.data.update_bill(bill_id, attachment=attachment)
        return str(attachment["jwt"])

    def delete_bill(self, bill_id: int) -> None:
        self.data.delete_bill(bill_id)

    def create_payment(self, billid: int, **fields: Any) -> int:
        return self.data.create_payment(billid, **fields)

    def update_payment(self, payment_id: int, **changes: Any) -> None:
        self.data.update_payment(payment_id, **changes)

    def delete_payment(self, payment_id: int) -> None:
        self.data.delete_payment(payment_id)

    # ---- OAuth helpers for tests --------------------------------------------------------------

    def issue_code(self, redirect_uri: str, scope: str | None = None) -> str:
        """An authorization code as if the operator had clicked "Allow" in the browser.

        Under `scope-missing` the grant lacks the scope the app is not registered for.
        """
        if scope is None:
            scope = DEFAULT_SCOPE
            if "scope-missing" in self.realities:
                scope = " ".join(s for s in scope.split() if s != MISSING_SCOPE)
        if "coding-scopes-missing" in self.realities:
            scope = " ".join(s for s in scope.split() if s not in CODING_SCOPES)
        return self.auth.issue_code(redirect_uri, scope)

    def expire_access_tokens(self) -> None:
        self.auth.expire_access_tokens()

    # ---- faults, holds, counters --------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(
        self, prefix: str, times: int = 1, *, status: int = 500, method: str | None = None
    ) -> Fault:
        return self.add_fault(Fault(prefix, "status", times, status=status, method=method))

    def rate_limit(self, prefix: str, times: int = 1, *, retry_after: float = 1.0) -> Fault:
        return self.add_fault(Fault(prefix, "rate_limit", times, retry_after=retry_after))

    def delay(self, prefix: str, seconds: float, times: int = 1) -> Fault:
        return self.add_fault(Fault(prefix, "delay", times, seconds=seconds))

    def drop(self, prefix: str, times: int = 1) -> Fault:
        return self.add_fault(Fault(prefix, "drop", times))

    def lose(self, prefix: str, times: int = 1) -> Fault:
        """Act on matching requests but lose the answer: the client cannot tell it happened."""
        return self.add_fault(Fault(prefix, "lose", times))

    def truncate(self, prefix: str, times: int = 1) -> Fault:
        return self.add_fault(Fault(prefix, "truncate", times))

    def fail_at_rate(self, prefix: str, rate: float, *, seed: int = 0, **options: Any) -> FaultRate:
        """From now on, fail requests under `prefix` at `rate` (see `FaultRate`)."""
        fault_rate = FaultRate(prefix, rate, seed, **options)
        with self._lock:
            self.fault_rate = fault_rate
        return fault_rate

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.fault_rate = None

    def hold(self, prefix: str, *, method: str | None = None, times: int = 1) -> Hold:
        hold = Hold(prefix, method, times)
        with self._lock:
            self._holds.append(hold)
        return hold

    def count(self, method: str, kind: str) -> int:
        """Requests seen for (method, kind), e.g. `count("GET", "bills.list")`."""
        with self._lock:
            return self._counts[(method, kind)]

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def reset_counters(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()

    def arrive(self, method: str, path: str) -> tuple[Fault | None, Hold | None]:
        with self._lock:
            self._counts[(method, request_kind(method, path))] += 1
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                fault.used += 1
            elif self.fault_rate is not None:
                fault = self.fault_rate.draw(method, path)
            hold = next((h for h in self._holds if h.matches(method, path)), None)
            if hold is not None:
                hold.used += 1
        return fault, hold

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    # ---- webhooks -----------------------------------------------------------------------------

    def new_callback(self, account_id: str, event: str, uri: str, verifier: str) -> CallbackRecord:
        with self._lock:
            record = CallbackRecord(self._next_callback_id, event, uri, verifier, False, self.now())
            self._next_callback_id += 1
            self.callbacks[account_id][record.callback_id] = record
        return record

    def _announce(self, account_id: str, name: str, object_id: int) -> None:
        self.send_event(name, object_id, account_id=account_id)

    def send_verification(self, record: CallbackRecord) -> Delivery:
        form = (("verifier", record.verifier), ("object_id", str(record.callback_id)))
        return self._deliver(record, form)

    def send_event(
        self, name: str, object_id: int, *, account_id: str | None = None
    ) -> list[Delivery]:
        """POST a signed event to every verified callback of the account that matches `name`."""
        account_id = account_id or self.account_id
        business = next(b for b in self.businesses if b.account_id == account_id)
        form = (
            ("name", name),
            ("object_id", str(object_id)),
            ("account_id", account_id),
            ("business_id", str(business.business_id)),
            ("identity_id", "1"),
            ("user_id", "1"),
        )
        with self._lock:
            targets = [
                c for c in self.callbacks[account_id].values() if c.verified and c.matches(name)
            ]
        return [self._deliver(record, form) for record in targets]

    @contextmanager
    def capture_deliveries(self) -> Iterator[list[Delivery]]:
        """The webhook deliveries made inside the block (a change's events are sent inline)."""
        with self._lock:
            start = len(self.deliveries)
        captured: list[Delivery] = []
        try:
            yield captured
        finally:
            with self._lock:
                captured.extend(self.deliveries[start:])

    def _deliver(self, record: CallbackRecord, form: tuple[tuple[str, str], ...]) -> Delivery:
        body = urlencode(form).encode("utf-8")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(form, record.verifier),
        }
        parts = urlsplit(record.uri)
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            connection = factory(parts.netloc, timeout=DELIVERY_TIMEOUT)
            try:
                connection.request("POST", target, body=body, headers=headers)
                delivery = Delivery(
                    record.callback_id, record.uri, form, connection.getresponse().status
                )
            finally:
                connection.close()
        except OSError as error:
            delivery = Delivery(record.callback_id, record.uri, form, None, type(error).__name__)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 8765,
    vendors: int = 20,
    bills: int = 200,
    payments: int = 60,
    realities: str = "",
    write_config: Callable[[FreshBooksSandbox], str] | None = None,
    businesses: int = 1,
) -> None:
    """Serve a seeded sandbox until Ctrl-C or SIGTERM, printing what to configure fbstampli with.

    `write_config`, when given, writes the sandbox's settings into a home's config and
    returns a line saying so: a new terminal, or cron, then needs only FBSTAMPLI_HOME.
    `businesses` above 1 serves that many businesses on the one login, each seeded alike
    (its own data), as an accountant who belongs to several sees them at `auth login`.
    """
    stop = threading.Event()
    chosen = parse_realities(realities)  # a bad name is refused before the port is taken
    try:
        server = FreshBooksSandbox(
            host=host,
            port=port,
            emit_events=True,
            realities=chosen,
            businesses=sandbox_businesses(businesses),
        )
    except OSError as error:  # the port taken, an address that is not this machine's
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); "
            "choose another --host or --port"
        ) from None
    with stop_signals(stop), server as sandbox:
        for index, account in enumerate(sandbox.accounts.values()):
            account.seed(vendors=vendors, bills=bills, payments=payments, seed=1 + index)
        if businesses == 1:
            lines = [f"FreshBooks sandbox at {sandbox.url} (account {sandbox.account_id})"]
        else:
            lines = [f"FreshBooks sandbox at {sandbox.url}, {businesses} businesses on one login:"]
            lines += [
                f"  business {b.business_id}  {b.name} (account {b.account_id})"
                for b in sandbox.businesses
            ]
        if chosen:
            lines.append(f"  acting out: {', '.join(sorted(chosen))}")
        if write_config is not None:
            lines.append(f"  {write_config(sandbox)}")
        else:
            lines += [
                "  paste into the terminals that run fbstampli (or use --write-config HOME):",
                f"  export FBSTAMPLI_FRESHBOOKS_API_URL={sandbox.url}",
                f"  export FBSTAMPLI_FRESHBOOKS_AUTH_URL={sandbox.url}",
                f"  export FBSTAMPLI_FRESHBOOKS_CLIENT_ID={sandbox.client_id}",
                f"  export FBSTAMPLI_FRESHBOOKS_CLIENT_SECRET={sandbox.client_secret}",
            ]
        each = " each" if businesses > 1 else ""
        lines += [
            f"  change it while it runs (a webhook goes to each registered callback): fbstampli "
            f"sandbox freshbooks edit-bill --url {sandbox.url} --bill 1 --amount 12.50",
            "    (add-, edit-, delete-, restore- bill, vendor or payment; attach; fire-webhook)",
            f"  seeded {vendors} vendors, {bills} bills, {payments} payments{each}; Ctrl-C stops",
        ]
        print("\n".join(lines), flush=True)  # noqa: T201 - this is the interactive entry point
        stop.wait()
        print("stopped", flush=True)  # noqa: T201


SANDBOX_NAMES = ("Sandbox Supplies Ltd.", "Sandbox Services Inc.", "Sandbox Studio LLC")


def sandbox_businesses(count: int) -> list[Business]:
    """The first is the one-business sandbox's (ABC123, 439000); the others follow it."""
    return [
        Business(
            f"ABC{123 + index}",
            439000 + index,
            SANDBOX_NAMES[index] if index < len(SANDBOX_NAMES) else f"Sandbox Business {index + 1}",
        )
        for index in range(count)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the embedded FreshBooks sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--vendors", type=int, default=20)
    parser.add_argument("--bills", type=int, default=200)
    parser.add_argument("--payments", type=int, default=60)
    parser.add_argument("--reality", default="")
    args = parser.parse_args(argv)
    run_sandbox(args.host, args.port, args.vendors, args.bills, args.payments, args.reality)


if __name__ == "__main__":
    main()
