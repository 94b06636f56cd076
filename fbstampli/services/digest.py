"""digest, digest --all, auth smtp, and the daily digest `sync` sends: the commands of
`cli/digest.py`.

The digest is read from the state alone (no FreshBooks or SFTP request): the
funnel, the outcomes that need attention with their bills, the stuck
deliveries, and what changed since the last digest that was sent.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fbstampli.clock import from_utc_text, local_text, to_utc_text
from fbstampli.config_values import LOOPBACK_HOSTS
from fbstampli.digest import (
    Changes,
    Digest,
    ExceptionGroup,
    ExceptionItem,
    StuckDelivery,
    build_message,
    is_due,
    rank_of,
    render_html,
)
from fbstampli.errors import ConfigError, FbstampliError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime
from fbstampli.store import digests
from fbstampli.store.digests import SmtpLogin

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30.0
SETUP_HINT = "store the relay with `fbstampli auth smtp --host HOST --username USER`"


@dataclass(frozen=True, slots=True)
class DigestResult:
    """What `fbstampli digest` did, and the digest itself for the terminal's preview."""

    report: RunReport
    digest: Digest


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _groups(rt: Runtime, top: int) -> list[ExceptionGroup]:
    """Each outcome that needs attention: its count, its bills' totals by currency, and its
    `top` largest bills, read as a stream (a heap of `top` per outcome is all that is held)."""
    from fbstampli.models.outcome import Outcome

    attention = [outcome.value for outcome in Outcome if outcome.needs_attention]
    counts: dict[str, int] = defaultdict(int)
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    largest: dict[str, list[tuple[Decimal, int, ExceptionItem]]] = defaultdict(list)
    for seq, row in enumerate(digests.outcomes_with_bills(rt.store, attention)):
        outcome = str(row["outcome"])
        amount = _decimal(row["total_amount"])
        currency = str(row["currency_code"] or "")
        counts[outcome] += 1
        if amount is not None:
            totals[outcome][currency] += amount
        item = ExceptionItem(
            fb_bill_id=row["fb_bill_id"],
            invoice_number=str(row["bill_number"] or ""),
            vendor=str(row["vendor"] or ""),
            amount=amount,
            currency=currency,
            stampli_invoice_id=str(row["stampli_invoice_id"] or ""),
            detail=str(row["detail"] or ""),
        )
        heap = largest[outcome]
        entry = (amount if amount is not None else Decimal(-1), -seq, item)
        if len(heap) < top:
            heapq.heappush(heap, entry)
        else:
            heapq.heappushpop(heap, entry)
    return [
        ExceptionGroup(
            outcome=outcome,
            count=counts[outcome],
            totals=dict(totals[outcome]),
            items=[entry[2] for entry in sorted(largest[outcome], reverse=True)],
        )
        for outcome in sorted(counts, key=rank_of)
    ]


def _document_group(rt: Runtime, top: int) -> list[ExceptionGroup]:
    """The bills in Stampli without their document, as one more exception (the largest
    first), each saying why."""
    from fbstampli.models.documents import REASONS, DocumentProblem
    from fbstampli.store.documents import bills_without_documents

    rows = bills_without_documents(rt.store)
    if not rows:
        return []
    totals: dict[str, Decimal] = defaultdict(Decimal)
    items = []
    for row in rows:
        amount, currency = _decimal(row["total_amount"]), str(row["currency_code"] or "")
        if amount is not None:
            totals[currency] += amount
        items.append(
            ExceptionItem(
                fb_bill_id=int(row["fb_bill_id"]),
                invoice_number=str(row["bill_number"] or ""),
                vendor=str(row["vendor"] or ""),
                amount=amount,
                currency=currency,
                stampli_invoice_id="",
                detail=REASONS[DocumentProblem(str(row["problem"]))],
            )
        )
    items.sort(key=lambda item: item.amount if item.amount is not None else Decimal(-1))
    largest = items[::-1][:top]
    return [ExceptionGroup("without_document", len(rows), dict(totals), largest)]


def collect(rt: Runtime) -> Digest:
    """The digest of this home now, from the state alone."""
    from fbstampli.store.credentials import chosen_business
    from fbstampli.sync.matching import VOID_STATUSES

    settings = rt.settings.digest
    now = rt.clock.now()
    zone = ZoneInfo(settings.timezone)  # the digest's times, each with its zone (local_text)
    funnel = digests.funnel_counts(rt.store, VOID_STATUSES)
    queued_before = to_utc_text(now - timedelta(hours=settings.stuck_hours))
    stuck_total, stuck_rows = digests.stuck_deliveries(rt.store, queued_before, settings.top_items)
    stuck = [
        StuckDelivery(
            kind=str(row["kind"]),
            fb_id=int(row["fb_id"]),
            invoice_number=str(row["bill_number"] or ""),
            status=str(row["status"]),
            attempts=int(row["attempts"]),
            last_error=str(row["last_error"] or ""),
            queued_at=local_text(str(row["created_at"]), zone),
        )
        for row in stuck_rows
    ]
    last = digests.last_digest(rt.store)
    if last is None:
        changes = Changes(since=None)
    else:
        before = last.get("funnel", {})
        changes = Changes(
            since=local_text(str(last["at"]), zone) if last.get("at") else "",
            funnel={key: funnel[key] - int(before.get(key, 0)) for key in funnel},
            outcomes=digests.outcomes_changed_after(rt.store, int(last.get("run_id", 0))),
        )
    business = chosen_business(rt.store)
    reconciled = digests.reconciled_at(rt.store)
    return Digest(
        business=rt.settings.stampli.business or (business.name if business else "") or "fbstampli",
        generated_at=now.astimezone(zone),
        funnel=funnel,
        groups=_groups(rt, settings.top_items) + _document_group(rt, settings.top_items),
        stuck_total=stuck_total,
        stuck=stuck,
        changes=changes,
        reconciled_at=local_text(reconciled, zone) if reconciled else None,
    )


def _recipients(rt: Runtime) -> list[str]:
    return [address.strip() for address in rt.settings.digest.to.split(",") if address.strip()]


def send(rt: Runtime, digest: Digest) -> list[str]:
    """Send `digest` to digest.to through the stored relay, then remember what it said; the
    recipients it went to."""
    from fbstampli.mail import send_message

    to = _recipients(rt)
    sender = rt.settings.digest.sender
    if not to or not sender:
        raise ConfigError(
            "the digest has nowhere to go: set digest.to and digest.sender in config.toml"
        )
    login = digests.load_smtp_login(rt.store)
    if login is None:
        raise ConfigError(f"no SMTP relay stored for the digest; {SETUP_HINT}")
    send_message(login, build_message(digest, sender=sender, to=to), timeout=SMTP_TIMEOUT_SECONDS)
    digests.remember_digest(
        rt.store,
        {
            "at": to_utc_text(rt.clock.now()),
            "run_id": digests.last_run_id(rt.store),
            "funnel": dict(digest.funnel),
        },
        audit_detail=f"to {len(to)} recipients through {login.host}:{login.port}; "
        f"{digest.attention} bills need attention",
    )
    return to


def write_html(digest: Digest, output: Path) -> None:
    """The HTML part into `output`, whole or not at all (the caller checked the place)."""
    from fbstampli.atomic import write_atomic
    from fbstampli.errors import TemporaryError
    from fbstampli.paths import out_of_room

    try:
        write_atomic(output, render_html(digest).encode("utf-8"), mode=0o644)
    except OSError as error:
        if out_of_room(error):
            raise TemporaryError(
                f"cannot write the digest to {output}: the disk is full; free some space"
            ) from None
        raise ConfigError(f"cannot write the digest to {output}: {error.strerror}") from None


def digest(options: Options, *, send_it: bool, output: Path | None) -> DigestResult:
    """`fbstampli digest`: build it; write its HTML to `output`; send it when asked."""
    report = RunReport("digest")
    with open_runtime(options) as rt:
        built = collect(rt)
        for stage, count in built.funnel.items():
            report.add(stage, count)
        report.add("attention", built.attention)
        report.add("stuck", built.stuck_total)
        if output is not None:
            write_html(built, output)
            report.summary.append(f"Wrote the digest to {output}.")
        if send_it:
            to = send(rt, built)
            report.summary.append(f"Sent the digest to {', '.join(to)}.")
    return DigestResult(report, built)


def send_if_due(rt: Runtime) -> RunReport:
    """The daily digest from the cron run: sent when [digest] is enabled and its time of day
    has passed since the last one. A failure to send is a problem of this run (cron mails it)
    and the next run tries again; it never stops the sync."""
    report = RunReport("digest")
    settings = rt.settings.digest
    if not settings.enabled:
        return report
    last = digests.last_digest(rt.store)
    sent_at = from_utc_text(last["at"]) if last and last.get("at") else None
    if not is_due(rt.clock.now(), settings.send_at, ZoneInfo(settings.timezone), sent_at):
        return report
    try:
        to = send(rt, collect(rt))
    except FbstampliError as error:
        report.problems.append(f"the daily digest was not sent: {error}")
        return report
    report.notes.append(f"sent the daily digest to {', '.join(to)}")
    return report


# -- auth smtp ----------------------------------------------------------------------------------


def auth_smtp(
    options: Options,
    *,
    host: str,
    port: int | None,
    security: str,
    username: str,
    password: str,
    ca_file: Path | None,
) -> RunReport:
    """Store the relay and its login in the encrypted state (the password never printed)."""
    from fbstampli.mail import SECURITY

    if security not in SECURITY:
        raise ConfigError(f"--security {security}: must be one of {', '.join(SECURITY)}")
    if security == "none" and host.lower() not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"--security none would send the login and the digest in clear to {host}; "
            "use starttls or tls (plain SMTP only to a relay on this machine)"
        )
    if username and not password:
        raise ConfigError(
            "no SMTP password given: type it when asked, or pipe it with --password-stdin"
        )
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"--ca-file {ca_file}: no such file")
    login = SmtpLogin(
        host=host,
        port=port or (465 if security == "tls" else 587 if security == "starttls" else 25),
        security=security,
        username=username,
        password=password,
        ca_file=str(ca_file.resolve()) if ca_file else "",
    )
    report = RunReport("auth smtp")
    with open_runtime(options) as rt:
        digests.save_smtp_login(rt.store, login)
    who = f"{username} at " if username else ""
    report.summary.append(
        f"Stored the SMTP relay {who}{login.host}:{login.port} ({security}) in the encrypted "
        "state. Next: set digest.to and digest.sender in config.toml, then "
        "`fbstampli digest --send` to try it."
    )
    return report
