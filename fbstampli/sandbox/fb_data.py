"""The sandbox FreshBooks' state: seeded accounts, the mutation API tests use, OAuth grants.

In memory, no network. Objects are rendered in the documented JSON shapes
(docs/FRESHBOOKS-BEHAVIOUR.md §2) with derived fields (totals, paid, status) computed on the
fly, so a mutation can never leave a bill inconsistent with its payments.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fbstampli.sandbox.coding import default_categories, default_taxes

JsonObject = dict[str, Any]
ChangeListener = Callable[[str, int], None]

CENT = Decimal("0.01")
BASE_TIME = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)  # seeded timestamps start here
CODE_LIFETIME = timedelta(minutes=5)

# fmt: off
_COMPANY_FIRST = ["Northwind", "Bluebird", "Granite", "Harbor", "Summit", "Maple", "Cedar",
                  "Atlas", "Pioneer", "Beacon", "Redwood", "Evergreen", "Lakeside"]
_COMPANY_SECOND = ["Paper", "Logistics", "Office Supply", "Consulting", "Electric", "Catering",
                   "Software", "Print Works", "Freight", "Cleaning", "Legal", "Telecom"]
_COMPANY_SUFFIX = ["Co.", "LLC", "Inc.", "Ltd.", "Group", "& Sons", "Partners"]
_FIRST_NAMES = ["Ana", "Ben", "Chloé", "Dev", "Erin", "Farid", "Grace", "Hiro", "Ines", "Jon"]
_LAST_NAMES = ["Alvarez", "Brooks", "Chen", "Dubois", "Evans", "Fischer", "García", "Haddad"]
_STREETS = ["Main St", "Oak Ave", "King St W", "Harbour Rd", "Market St", "Elm Dr", "1st Ave"]
_CITIES = [  # city, province, postal code, country
    ("Springfield", "IL", "62701", "United States"), ("Austin", "TX", "73301", "United States"),
    ("Portland", "OR", "97201", "United States"), ("Toronto", "ON", "M5H 2N2", "Canada"),
    ("Dublin", "", "D02 X285", "Ireland"), ("London", "", "EC1A 1BB", "United Kingdom"),
]
_CATEGORIES = [(1001, "Office Supplies"), (1002, "Travel"), (1003, "Utilities"),
               (1004, "Professional Services"), (1005, "Software"), (1006, "Shipping"),
               (1007, "Meals and Entertainment"), (1008, "Rent")]
_TAXES = {"USD": ("Sales Tax", "8.25"), "CAD": ("HST", "13"), "EUR": ("VAT", "21"),
          "GBP": ("VAT", "20")}
_ITEMS = ["Toner cartridges", "Printer paper", "Monthly hosting", "Courier delivery",
          "Consulting hours", "Team lunch", "Office cleaning", "Software licence", "Flights"]
_PAYMENT_TYPES = ["Check", "Bank Transfer", "Credit Card", "ACH", "Cash", "Other"]
# fmt: on


def _money(amount: Decimal, code: str) -> JsonObject:
    return {"amount": f"{amount.quantize(CENT, ROUND_HALF_UP)}", "code": code}


def _stamp(moment: datetime, zone: tzinfo = UTC) -> str:
    # Bills and vendors use zone-less `YYYY-MM-DD HH:MM:SS` in UTC
    # (docs/FRESHBOOKS-BEHAVIOUR.md §2.8).
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _pick_currency(rng: random.Random) -> str:
    return rng.choices(["USD", "CAD", "EUR", "GBP"], weights=[80, 8, 6, 6])[0]


@dataclass(frozen=True, slots=True)
class Business:
    account_id: str
    business_id: int
    name: str
    role: str = "owner"


class AccountData:
    """Vendors, bills and payments of one account, as FreshBooks would store them."""

    def __init__(self, account_id: str, now: Callable[[], datetime]) -> None:
        self.account_id = account_id
        self.lock = threading.RLock()
        self.now = now
        self.on_change: ChangeListener | None = None
        # The zone vendor timestamps are written in: UTC as the Python SDK says, or
        # America/New_York as the Node SDK reads them (the `vendor-times-ny` reality).
        self.vendor_zone: tzinfo = UTC
        self.vendors: dict[int, JsonObject] = {}
        self.bills: dict[int, JsonObject] = {}
        self.payments: dict[int, JsonObject] = {}
        self.categories: dict[int, JsonObject] = default_categories()
        self.taxes: dict[int, JsonObject] = default_taxes()
        self._payments_by_bill: dict[int, list[int]] = {}
        self._next_id = {"vendor": 1, "bill": 1, "payment": 1}
        # That adding, editing or deleting a payment moves its bill's `updated_at` is
        # unconfirmed (docs/FRESHBOOKS-BEHAVIOUR.md §3.3); False plays an API where it does not, so
        # the sync's run-time check and its fallback to listing every payment are tested.
        self.payments_move_bill = True

    # ---- ids, timestamps, events --------------------------------------------------------------

    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] = value + 1
        return value

    def _bump(self, record: JsonObject) -> None:
        """A strictly later `updated_at`, even for two changes within one second."""
        now = self.now().astimezone(UTC).replace(microsecond=0)
        previous: datetime = record.get("updated_at", now - timedelta(seconds=1))
        record["updated_at"] = max(now, previous + timedelta(seconds=1))

    def _emit(self, name: str, object_id: int) -> None:
        if self.on_change is not None:
            self.on_change(name, object_id)

    # ---- derived bill fields ------------------------------------------------------------------

    def _live_payments(self, bill_id: int) -> list[JsonObject]:
        ids = self._payments_by_bill.get(bill_id, [])
        return [self.payments[i] for i in ids if self.payments[i]["vis_state"] != 1]

    def bill_totals(self, bill: JsonObject) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(subtotal, tax, total, paid) of a bill from its lines and live payments."""
        subtotal = tax = Decimal(0)
        for line in bill["lines"]:
            amount = (Decimal(line["quantity"]) * Decimal(line["unit_cost"])).quantize(CENT)
            subtotal += amount
            for n in ("1", "2"):
                if line.get(f"tax_percent{n}"):
                    tax += (amount * Decimal(line[f"tax_percent{n}"]) / 100).quantize(CENT)
        paid = sum((Decimal(p["amount"]) for p in self._live_payments(bill["id"])), Decimal(0))
        return subtotal, tax, subtotal + tax, paid

    def _status(self, bill: JsonObject, total: Decimal, paid: Decimal) -> str:
        due = date.fromisoformat(bill["issue_date"]) + timedelta(days=bill["due_offset_days"])
        if total > 0 and paid >= total:
            return "paid"
        if paid > 0:
            return "partial"
        return "overdue" if due < self.now().date() else "unpaid"

    # ---- rendering ----------------------------------------------------------------------------

    def render_vendor(self, vendor: JsonObject) -> JsonObject:
        body = {k: v for k, v in vendor.items() if k not in ("created_at", "updated_at")}
        body["created_at"] = _stamp(vendor["created_at"], self.vendor_zone)
        body["updated_at"] = _stamp(vendor["updated_at"], self.vendor_zone)
        return body

    def render_payment(self, payment: JsonObject) -> JsonObject:
        body = dict(payment)
        body["amount"] = _money(Decimal(payment["amount"]), payment["code"])
        del body["code"]
        return body

    def _render_line(self, line: JsonObject, index: int, code: str) -> JsonObject:
        amount = (Decimal(line["quantity"]) * Decimal(line["unit_cost"])).quantize(CENT)
        taxes = {}
        for n in ("1", "2"):
            percent = line.get(f"tax_percent{n}")
            taxes[f"tax_name{n}"] = line.get(f"tax_name{n}")
            taxes[f"tax_percent{n}"] = percent
            taxes[f"tax_amount{n}"] = (
                _money(amount * Decimal(percent) / 100, code) if percent else None
            )
        category_id, category = line["category"]
        return {
            "id": index,
            "list_index": index,
            "description": line["description"],
            "quantity": line["quantity"],  # a string, as FreshBooks sends it
            "unit_cost": _money(Decimal(line["unit_cost"]), code),
            "amount": _money(amount, code),
            "total_amount": _money(amount, code),
            "categoryid": category_id,
            "category": {"categoryid": category_id, "category": category, "is_cogs": False},
            **taxes,
        }

    def render_bill(self, bill: JsonObject, include_vendor: bool = False) -> JsonObject:
        code = bill["currency_code"]
        subtotal, tax, total, paid = self.bill_totals(bill)
        issue = date.fromisoformat(bill["issue_date"])
        lines = [self._render_line(line, i, code) for i, line in enumerate(bill["lines"], 1)]
        body: JsonObject = {
            "id": bill["id"],
            "vendorid": bill["vendorid"],
            "bill_number": bill["bill_number"],
            "issue_date": bill["issue_date"],
            "due_offset_days": bill["due_offset_days"],
            "due_date": (issue + timedelta(days=bill["due_offset_days"])).isoformat(),
            "currency_code": code,
            "language": "en",
            "amount": _money(subtotal, code),
            "tax_amount": _money(tax, code),
            "total_amount": _money(total, code),
            "paid": _money(paid, code),
            "outstanding": _money(total - paid, code),
            "status": self._status(bill, total, paid),
            "overall_category": bill["lines"][0]["category"][1] if bill["lines"] else "",
            "overall_description": bill["overall_description"],
            "lines": lines,
            "bill_payments": [self.render_payment(p) for p in self._live_payments(bill["id"])],
            "attachment": bill.get("attachment"),  # set by the admin face's attach
            "vis_state": bill["vis_state"],
            "created_at": _stamp(bill["created_at"]),
            "updated_at": _stamp(bill["updated_at"]),
        }
        vendor = self.vendors.get(bill["vendorid"])
        if include_vendor and vendor is not None:
            body["vendor"] = self.render_vendor(vendor)
        return body

    # ---- seeding ------------------------------------------------------------------------------

    def seed(
        self, *, vendors: int = 10, bills: int = 50, payments: int = 20, seed: int = 1
    ) -> None:
        """Add realistic, deterministic data: the same `seed` gives the same objects and ids."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        with self.lock:
            vendor_ids = [self._seed_vendor(rng, i) for i in range(vendors)]
            bill_ids = (
                [self._seed_bill(rng, i, vendor_ids) for i in range(bills)] if vendor_ids else []
            )
            for _ in range(payments if bill_ids else 0):
                self._seed_payment(rng, bill_ids)

    def _seed_vendor(self, rng: random.Random, index: int) -> int:
        words = (
            rng.choice(_COMPANY_FIRST),
            rng.choice(_COMPANY_SECOND),
            rng.choice(_COMPANY_SUFFIX),
        )
        name = " ".join(words)
        city, province, postal, country = rng.choice(_CITIES)
        created = BASE_TIME + timedelta(hours=index * 3 + rng.randint(0, 2))
        return self.create_vendor(
            vendor_name=name,
            primary_contact_first_name=rng.choice(_FIRST_NAMES),
            primary_contact_last_name=rng.choice(_LAST_NAMES),
            primary_contact_email=f"ap{index}@{name.split()[0].lower()}.example",
            phone=f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            street=f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}",
            street2=rng.choice(["", "", "Suite 200", "Unit 4"]),
            city=city,
            province=province,
            postal_code=postal,
            country=country,
            currency_code=_pick_currency(rng),
            account_number=f"ACCT-{rng.randint(10000, 99999)}",
            is_1099=rng.random() < 0.2,
            vis_state=2 if rng.random() < 0.05 else 0,
            _created_at=created,
            _silent=True,
        )

    def _seed_bill(self, rng: random.Random, index: int, vendor_ids: list[int]) -> int:
        vendor = self.vendors[rng.choice(vendor_ids)]
        code = vendor["currency_code"]
        tax_name, tax_percent = _TAXES[code]
        taxed = rng.random() < 0.5
        lines = [
            {
                "description": rng.choice(_ITEMS),
                "quantity": rng.choice(["1", "1", "2", "3", "1.5", "10"]),
                "unit_cost": f"{rng.randint(5, 2000)}.{rng.randint(0, 99):02d}",
                "category": rng.choice(_CATEGORIES),
                "tax_name1": tax_name if taxed else None,
                "tax_percent1": tax_percent if taxed else None,
            }
            for _ in range(rng.randint(1, 4))
        ]
        issue = (BASE_TIME + timedelta(days=index % 365)).date()
        return self.create_bill(
            vendor["vendorid"],
            lines=lines,
            issue_date=issue.isoformat(),
            bill_number=f"INV-{rng.randint(1000, 999999)}",
            due_offset_days=rng.choice([0, 15, 30, 30, 45, 60]),
            vis_state=2 if rng.random() < 0.03 else 0,
            _created_at=BASE_TIME + timedelta(days=index % 365, minutes=index),
            _silent=True,
        )

    def _seed_payment(self, rng: random.Random, bill_ids: list[int]) -> None:
        for _ in range(5):  # a few tries to find a bill that still owes money
            bill = self.bills[rng.choice(bill_ids)]
            _, _, total, paid = self.bill_totals(bill)
            if total > paid:
                full = rng.random() < 0.6
                amount = total - paid if full else ((total - paid) / 2).quantize(CENT)
                paid_on = date.fromisoformat(bill["issue_date"]) + timedelta(
                    days=rng.randint(0, 40)
                )
                self.create_payment(
                    bill["id"],
                    amount=amount,
                    paid_date=paid_on.isoformat(),
                    payment_type=rng.choice(_PAYMENT_TYPES),
                    _silent=True,
                )
                return

    # ---- mutation API -------------------------------------------------------------------------

    def create_vendor(self, vendor_name: str = "New Vendor", **fields: Any) -> int:
        created = fields.pop("_created_at", None) or self.now()
        silent = fields.pop("_silent", False)
        with self.lock:
            vendor_id = self._new_id("vendor")
            vendor: JsonObject = {
                "vendorid": vendor_id, "vendor_name": vendor_name,
                "primary_contact_first_name": "", "primary_contact_last_name": "",
                "primary_contact_email": "", "phone": "", "website": "", "street": "",
                "street2": "", "city": "", "province": "", "postal_code": "", "country": "",
                "currency_code": "USD", "language": "en", "account_number": "", "is_1099": False,
                "note": "", "tax_defaults": [], "outstanding_balance": [], "overdue_balance": [],
                "vis_state": 0, "created_at": created, "updated_at": created,
            }  # fmt: skip
            vendor.update(fields)
            self.vendors[vendor_id] = vendor
        if not silent:
            self._emit("bill_vendor.create", vendor_id)
        return vendor_id

    def update_vendor(self, vendor_id: int, **changes: Any) -> None:
        with self.lock:
            vendor = self.vendors[vendor_id]
            vendor.update(changes)
            self._bump(vendor)
        self._emit(
            "bill_vendor.delete" if changes.get("vis_state") == 1 else "bill_vendor.update",
            vendor_id,
        )

    def delete_vendor(self, vendor_id: int) -> None:
        self.update_vendor(vendor_id, vis_state=1)

    def create_bill(
        self,
        vendorid: int,
        *,
        lines: Iterable[JsonObject] | None = None,
        issue_date: str | None = None,
        bill_number: str | None = None,
        due_offset_days: int = 30,
        currency_code: str | None = None,
        **fields: Any,
    ) -> int:
        """Lines are `{description, quantity, unit_cost, category: (id, name), tax_name1, ...}`."""
        created = fields.pop("_created_at", None) or self.now()
        silent = fields.pop("_silent", False)
        with self.lock:
            bill_id = self._new_id("bill")
            vendor = self.vendors[vendorid]
            default_line = {"description": "Services", "quantity": "1", "unit_cost": "100.00"}
            bill: JsonObject = {
                "id": bill_id,
                "vendorid": vendorid,
                "bill_number": bill_number or f"B-{bill_id:05d}",
                "issue_date": issue_date or created.date().isoformat(),
                "due_offset_days": due_offset_days,
                "currency_code": currency_code or vendor["currency_code"],
                "lines": [self._normalise_line(line) for line in (lines or [default_line])],
                "overall_description": "",
                "vis_state": 0,
                "created_at": created,
                "updated_at": created,
            }
            bill.update(fields)
            bill["overall_description"] = (
                bill["overall_description"] or bill["lines"][0]["description"]
            )
            self.bills[bill_id] = bill
        if not silent:
            self._emit("bill.create", bill_id)
        return bill_id

    @staticmethod
    def _normalise_line(line: JsonObject) -> JsonObject:
        category = line.get("category") or _CATEGORIES[0]
        return {
            "description": str(line.get("description", "")),
            "quantity": str(line.get("quantity", "1")),
            "unit_cost": str(line.get("unit_cost", "0")),
            "category": tuple(category),
            "tax_name1": line.get("tax_name1"),
            "tax_percent1": line.get("tax_percent1"),
            "tax_name2": line.get("tax_name2"),
            "tax_percent2": line.get("tax_percent2"),
        }

    def update_bill(self, bill_id: int, **changes: Any) -> None:
        """Change stored fields (not derived ones like `paid`) and bump `updated_at`."""
        with self.lock:
            bill = self.bills[bill_id]
            if "lines" in changes:
                changes["lines"] = [self._normalise_line(line) for line in changes["lines"]]
            bill.update(changes)
            self._bump(bill)
        self._emit("bill.delete" if changes.get("vis_state") == 1 else "bill.update", bill_id)

    def delete_bill(self, bill_id: int) -> None:
        self.update_bill(bill_id, vis_state=1)

    def create_payment(
        self,
        billid: int,
        *,
        amount: Decimal | str | None = None,
        paid_date: str | None = None,
        payment_type: str = "Check",
        note: str = "",
        **fields: Any,
    ) -> int:
        """A payment (default: the whole outstanding amount); it bumps its bill's `updated_at`."""
        silent = fields.pop("_silent", False)
        with self.lock:
            bill = self.bills[billid]
            if amount is None:
                _, _, total, paid = self.bill_totals(bill)
                amount = total - paid
            payment_id = self._new_id("payment")
            self.payments[payment_id] = {
                "id": payment_id,
                "billid": billid,
                "amount": str(Decimal(amount).quantize(CENT)),
                "code": bill["currency_code"],
                "paid_date": paid_date or self.now().date().isoformat(),
                "payment_type": payment_type,
                "note": note,
                "matched_with_expense": False,
                "vis_state": 0,
                **fields,
            }
            self._payments_by_bill.setdefault(billid, []).append(payment_id)
            if not silent and self.payments_move_bill:
                self._bump(bill)
        if not silent:
            # there is no bill_payment event (docs/FRESHBOOKS-BEHAVIOUR.md §3.3)
            self._emit("bill.update", billid)
        return payment_id

    def update_payment(self, payment_id: int, **changes: Any) -> None:
        with self.lock:
            payment = self.payments[payment_id]
            if "amount" in changes:
                changes["amount"] = str(Decimal(changes["amount"]).quantize(CENT))
            payment.update(changes)
            bill_id = int(payment["billid"])
            if self.payments_move_bill:
                self._bump(self.bills[bill_id])
        self._emit("bill.update", bill_id)

    def delete_payment(self, payment_id: int) -> None:
        self.update_payment(payment_id, vis_state=1)

    # ---- queries ------------------------------------------------------------------------------

    def update_category(self, category_id: int, **changes: Any) -> None:
        """Rename, re-parent, archive (vis_state 2) or delete (1) an expense category."""
        with self.lock:
            category = self.categories[category_id]
            category.update(changes)
            self._bump(category)

    def update_tax(self, tax_id: int, **changes: Any) -> None:
        """Rename, re-rate (`amount=`), archive (vis_state 2) or delete (1) a tax."""
        with self.lock:
            tax = self.taxes[tax_id]
            tax.update(changes)
            self._bump(tax)

    def create_category(self, name: str, parent_id: int | None = None) -> int:
        with self.lock:
            category_id = max(self.categories, default=1000) + 1
            self.categories[category_id] = {
                "id": category_id,
                "category": name,
                "parentid": parent_id,
                "is_cogs": False,
                "is_editable": True,
                "vis_state": 0,
                "created_at": self.now(),
            }
            self._bump(self.categories[category_id])
        return category_id

    def select(
        self,
        table: dict[int, JsonObject],
        *,
        vis_state: int | None = None,
        ids: set[int] | None = None,
        equals: dict[str, int] | None = None,
    ) -> list[JsonObject]:
        """Rows in id order; without `vis_state`, deleted rows are left out as FreshBooks does."""
        rows = []
        for key, row in table.items():
            if ids is not None and key not in ids:
                continue
            state = row["vis_state"]
            if (vis_state is None and state == 1) or (vis_state is not None and state != vis_state):
                continue
            if equals and any(row.get(k) != v for k, v in equals.items()):
                continue
            rows.append(row)
        return rows


@dataclass(slots=True)
class _Grant:
    scope: str
    expires_at: datetime
    refresh_token: str


@dataclass(slots=True)
class AuthState:
    """OAuth as the sandbox plays it: 5-minute one-shot codes, rotating refresh tokens."""

    client_id: str
    client_secret: str = field(repr=False)
    access_lifetime: int  # seconds
    now: Callable[[], datetime]
    lock: threading.Lock = field(default_factory=threading.Lock)
    codes: dict[str, tuple[str, str, datetime]] = field(
        default_factory=dict
    )  # redirect, scope, expiry
    access: dict[str, _Grant] = field(default_factory=dict)
    live_refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> scope
    spent_refresh: set[str] = field(default_factory=set)

    def issue_code(self, redirect_uri: str, scope: str) -> str:
        code = secrets.token_hex(16)
        with self.lock:
            self.codes[code] = (redirect_uri, scope, self.now() + CODE_LIFETIME)
        return code

    def _issue_pair(self, scope: str) -> JsonObject:
        access, refresh = secrets.token_hex(24), secrets.token_hex(32)
        now = self.now()
        self.access[access] = _Grant(scope, now + timedelta(seconds=self.access_lifetime), refresh)
        self.live_refresh[refresh] = scope
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "refresh_token": refresh,
            "scope": scope,
            "created_at": int(now.timestamp()),
        }

    def exchange_code(self, code: str, redirect_uri: str) -> JsonObject | None:
        """A token pair, or None for an unknown, expired, spent or mis-redirected code."""
        with self.lock:
            entry = self.codes.pop(code, None)
            if entry is None or entry[0] != redirect_uri or entry[2] < self.now():
                return None
            return self._issue_pair(entry[1])

    def refresh(self, refresh_token: str) -> JsonObject | None:
        """A new pair; the given refresh token is spent from now on (None if already spent)."""
        with self.lock:
            scope = self.live_refresh.pop(refresh_token, None)
            if scope is None:
                return None
            self.spent_refresh.add(refresh_token)
            return self._issue_pair(scope)

    def revoke(self, token: str) -> None:
        with self.lock:
            self.live_refresh.pop(token, None)
            self.spent_refresh.add(token)
            for access in [
                a for a, g in self.access.items() if g.refresh_token == token or a == token
            ]:
                del self.access[access]

    def scope_of(self, access_token: str) -> str | None:
        """The scope of a live access token, or None if unknown or expired."""
        with self.lock:
            grant = self.access.get(access_token)
            if grant is None or grant.expires_at <= self.now():
                return None
            return grant.scope

    def expire_access_tokens(self) -> None:
        """Make every issued access token stale at once, as 12 hours passing would."""
        with self.lock:
            self.access.clear()


@dataclass(slots=True)
class CallbackRecord:
    callback_id: int
    event: str
    uri: str
    verifier: str = field(repr=False)
    verified: bool = False
    updated_at: datetime = BASE_TIME

    def render(self) -> JsonObject:
        return {
            "callbackid": self.callback_id,
            "id": self.callback_id,
            "event": self.event,
            "uri": self.uri,
            "verified": self.verified,
            "updated_at": self.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def matches(self, event_name: str) -> bool:
        """`bill` matches `bill.update`: FreshBooks' "event and parent event" rule."""
        return self.event == event_name or event_name.startswith(self.event + ".")


class Answer(Exception):
    """Raised inside a route to answer at once with `status` and a JSON body (or `raw`
    bytes: an uploaded file)."""

    def __init__(
        self,
        status: int,
        body: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw
