"""Per-payment matching: each FreshBooks payment paired with a Stampli payment, not only sums.

Pure. A FreshBooks payment pairs with a Stampli payment in the same currency:
first by reference (Stampli echoes the FreshBooks payment id, or the FreshBooks
payment's note names Stampli's payment id), then by amount (within the
tolerance) and date (within the window), the closest first. What is left
unpaired on either side is what an accountant would chase; when the sums still
agree (one cheque recorded as two instalments), the bill is matched and the
detail says the payments are split differently. Amounts in different currencies
are never compared: that is an outcome of its own.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from fbstampli.models.outcome import Outcome


@dataclass(frozen=True, slots=True)
class Money:
    """A payment (or an amount) in one currency; `on` its date, `ref` its id, `note` its
    free text, where known."""

    amount: Decimal
    currency: str
    on: date | None = None
    ref: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """A difference no larger than `amount`, or than `percent` of the larger amount, is none."""

    amount: Decimal = Decimal(0)
    percent: Decimal = Decimal(0)

    def allows(self, one: Decimal, other: Decimal) -> bool:
        difference = abs(one - other)
        if difference == 0:
            return True
        return difference <= self.amount or difference <= (
            max(abs(one), abs(other)) * self.percent / 100
        )

    def __str__(self) -> str:
        parts = [f"{self.amount:.2f}"] if self.amount else []
        parts += [f"{self.percent.normalize()}%"] if self.percent else []
        return " or ".join(parts) or "0"


EXACT = Tolerance()


@dataclass(frozen=True, slots=True)
class Pair:
    fb: Money
    stampli: Money
    by: str  # "reference" or "amount and date"


@dataclass(frozen=True, slots=True)
class Pairing:
    pairs: tuple[Pair, ...]
    fb_left: tuple[Money, ...]
    stampli_left: tuple[Money, ...]


def sums(payments: Iterable[Money]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for payment in payments:
        totals[payment.currency] += payment.amount
    return dict(totals)


def describe(totals: Mapping[str, Decimal]) -> str:
    """`{"USD": 100}` -> "100.00 USD"; several currencies joined by " + "."""
    return " + ".join(f"{amount:.2f} {code}" for code, amount in sorted(totals.items())) or "0"


def one(payment: Money) -> str:
    dated = f" of {payment.on.isoformat()}" if payment.on else ""
    return f"{payment.amount:.2f} {payment.currency}{dated}"


def _days_apart(fb: Money, stampli: Money) -> int:
    if fb.on is None or stampli.on is None:
        return 0  # an undated payment is not held against the window
    return abs((fb.on - stampli.on).days)


def _same_reference(fb: Money, stampli: Money) -> bool:
    ref = stampli.ref.strip().casefold()
    if not ref:
        return False
    if ref == fb.ref.strip().casefold():
        return True
    return re.search(rf"(?<!\w){re.escape(ref)}(?!\w)", fb.note.casefold()) is not None


def pair_payments(
    fb: Sequence[Money], stampli: Sequence[Money], tolerance: Tolerance, window_days: int
) -> Pairing:
    """Pair each FreshBooks payment with at most one Stampli payment (see the module)."""
    fb_left, st_left = list(fb), list(stampli)
    pairs: list[Pair] = []
    for payment in list(fb_left):
        twin = next(
            (s for s in st_left if s.currency == payment.currency and _same_reference(payment, s)),
            None,
        )
        if twin is not None:
            pairs.append(Pair(payment, twin, "reference"))
            fb_left.remove(payment)
            st_left.remove(twin)
    candidates = sorted(
        (abs(f.amount - s.amount), _days_apart(f, s), i, j)
        for i, f in enumerate(fb_left)
        for j, s in enumerate(st_left)
        if f.currency == s.currency
        and tolerance.allows(f.amount, s.amount)
        and _days_apart(f, s) <= window_days
    )
    used_fb: set[int] = set()
    used_st: set[int] = set()
    for _, _, i, j in candidates:
        if i not in used_fb and j not in used_st:
            used_fb.add(i)
            used_st.add(j)
            pairs.append(Pair(fb_left[i], st_left[j], "amount and date"))
    return Pairing(
        tuple(pairs),
        tuple(f for i, f in enumerate(fb_left) if i not in used_fb),
        tuple(s for j, s in enumerate(st_left) if j not in used_st),
    )


def _sums_agree(fb: Mapping[str, Decimal], st: Mapping[str, Decimal], tol: Tolerance) -> bool:
    return set(fb) == set(st) and all(tol.allows(fb[code], st[code]) for code in fb)


def _open(total: Decimal, currency: str, paid: Mapping[str, Decimal]) -> str:
    """ "; 1048.50 USD open on both sides" when the bill is partly paid, else ""."""
    left = total - paid.get(currency, Decimal(0))
    if set(paid) != {currency} or left <= 0:
        return ""
    return f"; {left:.2f} {currency} of {total:.2f} {currency} open on both sides"


def judge_payments(
    total: Money,
    fb: Sequence[Money],
    stampli: Sequence[Money],
    tolerance: Tolerance = EXACT,
    window_days: int = 5,
    voided: Sequence[Money] = (),
) -> tuple[Outcome, str] | None:
    """The payments' outcome for a bill of `total`, and its detail; None when neither side
    paid anything. `voided`: Stampli's payments reported void, named when FreshBooks paid."""
    fb_sums, st_sums = sums(fb), sums(stampli)
    if not fb and not stampli:
        return None
    if not stampli:
        detail = f"FreshBooks paid {describe(fb_sums)}"
        if voided:
            listed = ", ".join(f"{p.ref} ({one(p)})".lstrip() for p in voided)
            detail += f"; Stampli voided its payment {listed}"
        return Outcome.PAID_IN_FRESHBOOKS_ONLY, detail
    if not fb:
        return Outcome.PAID_IN_STAMPLI_ONLY, f"Stampli paid {describe(st_sums)}"
    said = f"FreshBooks paid {describe(fb_sums)}, Stampli paid {describe(st_sums)}"
    if set(fb_sums).isdisjoint(st_sums):
        return Outcome.CURRENCY_DIFFERS, f"{said}: amounts in different currencies"
    pairing = pair_payments(fb, stampli, tolerance, window_days)
    open_part = _open(total.amount, total.currency, fb_sums) if fb_sums == st_sums else ""
    if not pairing.fb_left and not pairing.stampli_left:
        return Outcome.MATCHED, _matched_detail(fb_sums, pairing, tolerance) + open_part
    if _sums_agree(fb_sums, st_sums, tolerance):
        split = "; " + _unpaired(pairing) + " (the same sum, split or dated differently)"
        return Outcome.MATCHED, f"paid {describe(fb_sums)} in both{split}{open_part}"
    if pairing.pairs:
        said += "; " + _unpaired(pairing)
    return Outcome.AMOUNT_DIFFERS, said


def _matched_detail(fb_sums: Mapping[str, Decimal], pairing: Pairing, tol: Tolerance) -> str:
    st_sums = sums(p.stampli for p in pairing.pairs)
    detail = f"paid {describe(fb_sums)} in both"
    if st_sums != fb_sums:
        detail = f"FreshBooks paid {describe(fb_sums)}, Stampli paid {describe(st_sums)}"
    if len(pairing.pairs) > 1:
        detail += f", {len(pairing.pairs)} payments matched one by one"
    for pair in pairing.pairs:
        apart = _days_apart(pair.fb, pair.stampli)
        if pair.by == "reference" and apart:
            ref = pair.stampli.ref
            detail += f"; Stampli's payment {ref} matched by its reference, {apart} days apart"
    off = [p for p in pairing.pairs if p.fb.amount != p.stampli.amount]
    if off:
        differences = ", ".join(
            f"{one(p.fb)} against {p.stampli.amount:.2f}" for p in off
        )  # fmt: skip
        detail += f"; within the tolerance of {tol} ({differences})"
    return detail


def _unpaired(pairing: Pairing) -> str:
    parts = []
    if pairing.fb_left:
        listed = ", ".join(one(p) for p in pairing.fb_left)
        parts.append(f"FreshBooks' {listed} has no matching Stampli payment")
    if pairing.stampli_left:
        listed = ", ".join(one(p) for p in pairing.stampli_left)
        parts.append(f"Stampli's {listed} has no matching FreshBooks payment")
    return "; ".join(parts)
