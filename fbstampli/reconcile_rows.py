"""The reconcile report's row for people: a bill's invoice number, vendor, total, what each
side paid, its dates, its outcome and one sentence saying why.

Pure: a stored row (`store/reconcile_report.py`) in, a plain dict out. `detail` (the
matcher's terse words) stays beside `why` for scripts that read it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

COLUMNS = [
    "fb_bill_id",
    "invoice_number",
    "vendor",
    "bill_total",
    "currency",
    "paid_in_freshbooks",
    "paid_in_stampli",
    "open_balance",
    "stampli_open_balance",
    "issue_date",
    "due_date",
    "sent_at",
    "approved_at",
    "freshbooks_paid_on",
    "stampli_paid_on",
    "outcome",
    "why",
    "stampli_invoice_id",
    "detail",
]
# What a terminal shows: enough to find the bill and act, the rest is in --format csv.
TERMINAL_COLUMNS = [
    "invoice_number",
    "vendor",
    "bill_total",
    "paid_in_freshbooks",
    "paid_in_stampli",
    "outcome",
    "why",
]


def _sums(listed: str | None, default_currency: str) -> dict[str, Decimal]:
    """`"12.50 USD;3 USD;1 EUR"` -> {"USD": 15.50, "EUR": 1}; unreadable amounts are left out."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for part in (listed or "").split(";"):
        amount, _, currency = part.strip().partition(" ")
        if not amount:
            continue
        try:
            sums[currency.strip() or default_currency] += Decimal(amount)
        except InvalidOperation:
            continue
    return dict(sums)


def _said(sums: Mapping[str, Decimal]) -> str:
    parts = (f"{amount:.2f} {currency}".strip() for currency, amount in sorted(sums.items()))
    return " + ".join(parts)


def open_balance(total: Decimal | None, currency: str, paid: Mapping[str, Decimal]) -> str:
    """What is left to pay of the bill after one side's payments, in the bill's currency;
    empty when it cannot be said (no total, or a payment in another currency)."""
    if total is None or any(code != currency for code in paid):
        return ""
    return f"{total - paid.get(currency, Decimal(0)):.2f}"


def _day(value: Any) -> str:
    """A stored moment in ISO 8601 UTC (as every time in CSV and JSON), a date as it is;
    empty for none."""
    text = "" if value is None else str(value)
    if "T" not in text or text.endswith("Z"):  # a date, or stored as to_utc_text writes it
        return text
    if text.endswith("+00:00"):  # UTC already: only its spelling (250,000 rows: no parsing)
        return text.removesuffix("+00:00") + "Z"
    from fbstampli.clock import parse_time, to_utc_text

    return to_utc_text(parse_time(text))


# What an AP lead does about each outcome the matcher explains in its own words (`detail`).
ACTIONS = {
    "captured_amount_differs": "correct the invoice total in Stampli",
    "changed_after_approval": "have the current version approved in Stampli",
    "stampli_holds_old_version": "ask Stampli to take the latest version",
    "rejected_but_paid": "confirm the payment was meant",
    "voided": "nothing to do",
}


def _sentence(detail: str, action: str) -> str:
    text = str(detail).strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}: {action}."


def _deleted_action(detail: str) -> str:
    if "paid" in detail:
        return "recover the payment from the vendor, or restore the bill in FreshBooks"
    if "approved" in detail:
        return "reject it in Stampli before it is paid"
    return "cancel it in Stampli"


def _matched(row: Mapping[str, Any]) -> str:
    detail, fb = str(row["detail"]), row["paid_in_freshbooks"] or "nothing"
    sentence = f"FreshBooks and Stampli both paid {fb}"
    if "tolerance" in detail:
        st = row["paid_in_stampli"]
        tolerance = detail.split("within the tolerance of ", 1)[1].split(" (", 1)[0]
        sentence = f"FreshBooks paid {fb} and Stampli {st}, within the {tolerance} tolerance"
    elif "split or dated differently" in detail:
        sentence += " in total, though split or dated differently"
    elif "matched one by one" in detail:
        sentence += ", in " + detail.split(", ", 1)[1].split(";", 1)[0]
    if "by its reference" in detail:
        sentence += "; " + detail.split("; ", 1)[1].split(";", 1)[0]
    left = row["open_balance"]
    if left and left == row["stampli_open_balance"] and Decimal(left) > 0:
        sentence += f"; {left} {row['currency']} is still open on both sides"
    return sentence + "."


def why(row: Mapping[str, Any]) -> str:
    """One sentence an accountant reads: what each side says of this bill."""
    outcome = row["outcome"]
    fb, stampli = row["paid_in_freshbooks"], row["paid_in_stampli"]
    if outcome == "matched":
        return _matched(row)
    if outcome == "currency_differs":
        return (
            f"FreshBooks paid {fb} but Stampli paid {stampli}, in another currency: amounts "
            "are never compared across currencies; check which currency the vendor was paid in."
        )
    if outcome in ACTIONS:
        return _sentence(row["detail"], ACTIONS[outcome])
    if outcome == "deleted_in_freshbooks":
        return _sentence(row["detail"], _deleted_action(str(row["detail"])))
    if outcome == "amount_differs":
        unpaired = str(row["detail"]).partition("; ")[2]
        more = f"; {unpaired}" if unpaired else ""
        said = f"FreshBooks recorded {fb or 'no payment'} but Stampli paid {stampli or 'nothing'}"
        return f"{said}{more}."
    if outcome == "paid_in_freshbooks_only":
        voided = str(row["detail"]).partition("; Stampli voided its payment ")[2]
        if voided:
            return f"FreshBooks recorded {fb} paid, but Stampli voided its payment {voided}."
        return f"FreshBooks recorded {fb} paid, but Stampli exported no payment for this bill."
    if outcome == "paid_in_stampli_only":
        return f"Stampli paid {stampli}, but FreshBooks records no payment for this bill."
    if outcome == "approved_not_paid":
        return f"Approved in Stampli{_on(row['approved_at'])} and still unpaid on both sides."
    if outcome == "not_captured":
        return f"Sent to Stampli{_on(row['sent_at'])} but Stampli has not captured it."
    if outcome == "unknown_to_freshbooks":
        paid = f" (paid {stampli})" if stampli else ""
        invoice = row["stampli_invoice_id"]
        return f"Stampli has invoice {invoice}{paid}, but FreshBooks has no such bill."
    if outcome == "history":
        return (
            f"Paid in FreshBooks before it was sent to Stampli ({row['detail']}): "
            "history from before go-live, reported only."
        )
    if outcome == "acknowledged":
        return f"Needs no attention while its facts hold: {row['detail']}."
    if outcome == "in_progress":
        total = f"{row['bill_total']} {row['currency']}".strip()
        state = f" ({str(row['detail']).replace('_', ' ')})" if row["detail"] else ""
        return f"In Stampli's workflow{state}; nothing is overdue yet on the {total or 'bill'}."
    return f"{str(outcome).replace('_', ' ').capitalize()}."


def _on(moment: Any) -> str:
    day = _day(moment)
    return f" on {day[:10]}" if day else ""


def report_row(stored: Mapping[str, Any]) -> dict[str, Any]:
    """One stored row as the report's columns (`COLUMNS`), `why` included."""
    currency = str(stored["currency"] or "")
    total = None if stored["bill_total"] is None else Decimal(str(stored["bill_total"]))
    freshbooks_paid = _sums(stored["freshbooks_payments"], currency)
    stampli_paid = _sums(stored["stampli_payments"], currency)
    row: dict[str, Any] = {
        "fb_bill_id": stored["fb_bill_id"],
        "invoice_number": str(stored["bill_number"] or stored["stampli_invoice_number"] or ""),
        "vendor": str(stored["vendor"] or stored["stampli_vendor"] or ""),
        "bill_total": "" if total is None else f"{total:.2f}",
        "currency": currency,
        "paid_in_freshbooks": _said(freshbooks_paid),
        "paid_in_stampli": _said(stampli_paid),
        "open_balance": open_balance(total, currency, freshbooks_paid),
        "stampli_open_balance": open_balance(total, currency, stampli_paid),
        "issue_date": str(stored["issue_date"] or ""),
        "due_date": str(stored["due_date"] or ""),
        "sent_at": _day(stored["sent_at"]),
        "approved_at": _day(stored["approved_at"]),
        "freshbooks_paid_on": str(stored["freshbooks_paid_on"] or ""),
        "stampli_paid_on": str(stored["stampli_paid_on"] or ""),
        "outcome": str(stored["outcome"]),
        "stampli_invoice_id": str(stored["stampli_invoice_id"] or ""),
        "detail": str(stored["detail"] or ""),
    }
    row["why"] = why(row)
    return {column: row[column] for column in COLUMNS}
