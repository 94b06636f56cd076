"""The daily digest as data, and as the e-mail an AP lead reads: plain text and HTML.

Pure: no store, no network, no clock (the moment is given). Every value that
came from outside (vendor names, invoice numbers, error texts, the business
name) goes through `html.escape` in the HTML and through `_plain` (control
characters shown, not obeyed) in the text part and headers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

STAGES = (
    ("in_freshbooks", "In FreshBooks"),
    ("sent", "Sent to Stampli"),
    ("captured", "Captured in Stampli"),
    ("approved", "Approved in Stampli"),
    ("paid", "Paid in Stampli"),
)

# How an accountant names each outcome that needs a look, most urgent first.
TITLES = {
    "deleted_in_freshbooks": "Deleted in FreshBooks, approved or paid in Stampli",
    "rejected_but_paid": "Rejected in Stampli, paid in FreshBooks",
    "amount_differs": "Paid amounts differ",
    "currency_differs": "Paid in different currencies",
    "paid_in_stampli_only": "Paid in Stampli, not recorded in FreshBooks",
    "paid_in_freshbooks_only": "Paid in FreshBooks, not in Stampli",
    "changed_after_approval": "Changed in FreshBooks after Stampli approved it",
    "stampli_holds_old_version": "Stampli holds an old version",
    "captured_amount_differs": "Captured amount differs from the bill",
    "unknown_to_freshbooks": "In Stampli, unknown to FreshBooks",
    "approved_not_paid": "Approved but not paid",
    "not_captured": "Sent but not captured by Stampli",
    "without_document": "Sent to Stampli without their document",
}


def title_of(outcome: str) -> str:
    return TITLES.get(outcome, outcome.replace("_", " ").capitalize())


def rank_of(outcome: str) -> int:
    order = list(TITLES)
    return order.index(outcome) if outcome in order else len(order)


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    fb_bill_id: int | None
    invoice_number: str
    vendor: str
    amount: Decimal | None
    currency: str
    stampli_invoice_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class ExceptionGroup:
    outcome: str
    count: int
    totals: Mapping[str, Decimal]  # currency -> sum of the bills' totals
    items: Sequence[ExceptionItem]  # the largest first, at most `digest.top_items`

    @property
    def title(self) -> str:
        return title_of(self.outcome)


@dataclass(frozen=True, slots=True)
class StuckDelivery:
    kind: str
    fb_id: int
    invoice_number: str
    status: str
    attempts: int
    last_error: str
    queued_at: str


@dataclass(frozen=True, slots=True)
class Changes:
    """Since the last digest: `since` is None for the first one."""

    since: str | None
    funnel: Mapping[str, int] = field(default_factory=dict)  # stage -> difference
    outcomes: Mapping[str, int] = field(default_factory=dict)  # outcome -> bills newly in it


@dataclass(frozen=True, slots=True)
class Digest:
    business: str
    generated_at: datetime
    funnel: Mapping[str, int]
    groups: Sequence[ExceptionGroup]
    stuck_total: int
    stuck: Sequence[StuckDelivery]
    changes: Changes
    reconciled_at: str | None = None  # when reconcile last ran; None: never

    @property
    def attention(self) -> int:
        return sum(group.count for group in self.groups)


def is_due(now: datetime, send_at: str, zone: tzinfo, last_sent: datetime | None) -> bool:
    """Whether the daily digest is due: the last send time of day (`send_at` in `zone`) has
    passed since it was last sent. A digest never sent waits for today's send time, so
    turning it on at 06:00 for 07:00 does not send two."""
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in send_at.split(":"))
    mark = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if last_sent is None:
        return local >= mark
    if local < mark:
        mark -= timedelta(days=1)
    return last_sent < mark


# -- words ---------------------------------------------------------------------------------------

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _plain(value: object) -> str:
    """Outside text for the text part and headers: control characters shown, never obeyed."""
    text = "" if value is None else str(value)
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


def money(amount: Decimal | None, currency: str) -> str:
    return "" if amount is None else f"{amount:,.2f} {currency}".strip()


def totals_text(totals: Mapping[str, Decimal]) -> str:
    return ", ".join(money(amount, currency) for currency, amount in sorted(totals.items()))


def _bill(item: ExceptionItem) -> str:
    """The invoice as an accountant looks it up: its number, else Stampli's invoice id."""
    if item.invoice_number:
        return f"{item.invoice_number} (FreshBooks bill {item.fb_bill_id})"
    named = f", naming FreshBooks bill {item.fb_bill_id}" if item.fb_bill_id is not None else ""
    return f"Stampli invoice {item.stampli_invoice_id}{named}"


def _count(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


def _signed(number: int) -> str:
    return f"+{number:,}" if number > 0 else f"{number:,}"


def change_lines(changes: Changes) -> list[str]:
    if changes.since is None:
        return ["This is the first digest: from tomorrow, this part says what changed."]
    lines = []
    moved = [
        f"{label} {_signed(changes.funnel[key])}"
        for key, label in STAGES
        if changes.funnel.get(key)
    ]
    lines.append(("Funnel: " + ", ".join(moved)) if moved else "Funnel: no change.")
    for outcome, count in sorted(changes.outcomes.items(), key=lambda kv: rank_of(kv[0])):
        label = "now matched" if outcome == "matched" else title_of(outcome).lower()
        if outcome == "in_progress":
            label = "now in progress"
        lines.append(f"{_count(count, 'bill', 'bills')}: {label}")
    return lines


def subject(digest: Digest) -> str:
    day = digest.generated_at.strftime("%Y-%m-%d")
    need = f"{digest.attention:,} need{'s' if digest.attention == 1 else ''} attention"
    return _plain(f"fbstampli digest for {digest.business}, {day}: {need}")


# -- the text part -------------------------------------------------------------------------------


def render_text(digest: Digest) -> str:
    out = [subject(digest), ""]
    if digest.reconciled_at:
        out.append(f"Reconciled at {digest.reconciled_at}.")
    else:
        out.append("Reconcile has not run yet: the exceptions below are empty until it does.")
    out += ["", "PIPELINE"]
    width = max(len(label) for _, label in STAGES)
    for key, label in STAGES:
        out.append(f"  {label:<{width}}  {digest.funnel.get(key, 0):>8,}")
    need = "needs" if digest.attention == 1 else "need"
    out += ["", f"EXCEPTIONS ({_count(digest.attention, 'bill', 'bills')} {need} attention)"]
    if not digest.groups:
        out.append("  None.")
    for group in digest.groups:
        out.append(
            f"  {group.title}: {group.count:,} bills, {totals_text(group.totals) or 'no total'}"
        )
        for item in group.items:
            vendor = _plain(item.vendor) or "unknown vendor"
            out.append(
                f"    - {_plain(_bill(item))}, {vendor}, {money(item.amount, item.currency) or '-'}"
                f": {_plain(item.detail)}"
            )
        if group.count > len(group.items):
            out.append(f"    and {group.count - len(group.items):,} more")
    out += ["", f"STUCK DELIVERIES ({digest.stuck_total:,})"]
    if not digest.stuck:
        out.append("  None.")
    for stuck in digest.stuck:
        what = stuck.invoice_number or f"{stuck.kind} {stuck.fb_id}"
        error = f": {_plain(stuck.last_error)}" if stuck.last_error else ""
        out.append(
            f"  - {_plain(what)} ({stuck.kind} {stuck.fb_id}), {stuck.status} after "
            f"{stuck.attempts} attempts, queued {stuck.queued_at}{error}"
        )
    if digest.stuck_total > len(digest.stuck):
        out.append(f"  and {digest.stuck_total - len(digest.stuck):,} more: `fbstampli status`")
    since = f" ({digest.changes.since})" if digest.changes.since else ""
    out += ["", f"SINCE THE LAST DIGEST{since}"]
    out += [f"  {line}" for line in change_lines(digest.changes)]
    out += ["", "Every bill: fbstampli reconcile --format csv --output reconcile.csv", ""]
    return "\n".join(out)


# -- the HTML part -------------------------------------------------------------------------------

_e = html.escape  # every value from outside goes through this, quotes included

_STYLE = (
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1d2733;"
    "background:#f4f6f8;margin:0;padding:24px}"
    ".page{max-width:760px;margin:0 auto;background:#fff;border-radius:8px;padding:24px 28px;"
    "box-shadow:0 1px 3px rgba(0,0,0,.08)}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;"
    "border-bottom:1px solid #e3e8ee;padding-bottom:4px}"
    ".muted{color:#66727f;font-size:13px}"
    "table{border-collapse:collapse;width:100%;font-size:14px}"
    "td,th{padding:6px 8px;text-align:left;vertical-align:top}"
    "th{color:#66727f;font-weight:600;font-size:12px;text-transform:uppercase}"
    ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".bar{background:#2f80ed;height:14px;border-radius:3px;min-width:2px}"
    ".group{margin:16px 0 4px;font-weight:600}"
    ".bad{color:#b42318}.ok{color:#067647}"
    ".items td{border-top:1px solid #eef1f4}"
)


def _funnel_html(funnel: Mapping[str, int]) -> str:
    top = max(funnel.get("in_freshbooks", 0), *(funnel.get(key, 0) for key, _ in STAGES), 1)
    rows = []
    for key, label in STAGES:
        count = funnel.get(key, 0)
        width = round(100 * count / top)
        rows.append(
            f'<tr id="funnel-{key}"><td>{label}</td>'
            f'<td class="num"><strong>{count:,}</strong></td>'
            f'<td style="width:55%"><div class="bar" style="width:{width}%"></div></td></tr>'
        )
    return '<table class="funnel">' + "".join(rows) + "</table>"


def _bill_html(item: ExceptionItem) -> str:
    if not item.invoice_number:
        return _e(_bill(item))
    return (
        f'{_e(item.invoice_number)}<br><span class="muted">FreshBooks bill {item.fb_bill_id}</span>'
    )


def _groups_html(groups: Sequence[ExceptionGroup]) -> str:
    if not groups:
        return '<p class="ok">No bill needs attention.</p>'
    parts = []
    for group in groups:
        total = _e(totals_text(group.totals)) or "no total"
        parts.append(
            f'<div class="group">{_e(group.title)}: <span class="bad">{group.count:,}</span> '
            f'<span class="muted">({total})</span></div>'
        )
        rows = [
            '<tr><th>Invoice</th><th>Vendor</th><th class="num">Bill total</th><th>Why</th></tr>'
        ]
        for item in group.items:
            rows.append(
                f"<tr><td>{_bill_html(item)}</td><td>{_e(item.vendor) or '&ndash;'}</td>"
                f'<td class="num">{_e(money(item.amount, item.currency)) or "&ndash;"}</td>'
                f"<td>{_e(item.detail)}</td></tr>"
            )
        if group.count > len(group.items):
            rows.append(
                f'<tr><td colspan="4" class="muted">and {group.count - len(group.items):,} '
                "more</td></tr>"
            )
        parts.append('<table class="items">' + "".join(rows) + "</table>")
    return "".join(parts)


def _stuck_html(digest: Digest) -> str:
    if not digest.stuck:
        return '<p class="ok">Every delivery went through.</p>'
    rows = ["<tr><th>What</th><th>Status</th><th>Queued</th><th>Last error</th></tr>"]
    for stuck in digest.stuck:
        what = stuck.invoice_number or f"{stuck.kind} {stuck.fb_id}"
        rows.append(
            f'<tr><td>{_e(what)} <span class="muted">({_e(stuck.kind)} {stuck.fb_id})</span>'
            f"</td><td>{_e(stuck.status)}, {stuck.attempts} attempts</td>"
            f"<td>{_e(stuck.queued_at)}</td><td>{_e(stuck.last_error)}</td></tr>"
        )
    more = digest.stuck_total - len(digest.stuck)
    if more > 0:
        rows.append(f'<tr><td colspan="4" class="muted">and {more:,} more</td></tr>')
    return '<table class="items">' + "".join(rows) + "</table>"


def render_html(digest: Digest) -> str:
    reconciled = (
        f"Reconciled at {_e(digest.reconciled_at)}."
        if digest.reconciled_at
        else "Reconcile has not run yet."
    )
    since = (
        f' <span class="muted">({_e(digest.changes.since)})</span>' if digest.changes.since else ""
    )
    changes = "".join(f"<li>{_e(line)}</li>" for line in change_lines(digest.changes))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(subject(digest))}</title><style>{_STYLE}</style></head><body>"
        '<div class="page">'
        f"<h1>fbstampli digest: {_e(digest.business)}</h1>"
        f'<div class="muted">{_e(digest.generated_at.strftime("%A %d %B %Y, %H:%M %Z"))}. '
        f"{reconciled}</div>"
        f"<h2>Pipeline</h2>{_funnel_html(digest.funnel)}"
        f'<h2>Exceptions <span class="bad">{digest.attention:,}</span></h2>'
        f"{_groups_html(digest.groups)}"
        f"<h2>Stuck deliveries {digest.stuck_total:,}</h2>{_stuck_html(digest)}"
        f"<h2>Since the last digest{since}</h2><ul>{changes}</ul>"
        '<p class="muted">Every bill: <code>fbstampli reconcile --format csv --output '
        "reconcile.csv</code></p>"
        "</div></body></html>\n"
    )


# -- the message ---------------------------------------------------------------------------------


def build_message(digest: Digest, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """A multipart/alternative message: the text part first, the HTML part preferred."""
    message = EmailMessage()
    message["Subject"] = subject(digest)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(digest.generated_at)
    domain = sender.rpartition("@")[2] or "fbstampli.invalid"
    message["Message-ID"] = make_msgid("fbstampli-digest", domain=domain)
    message.set_content(render_text(digest))
    message.add_alternative(render_html(digest), subtype="html")
    return message
