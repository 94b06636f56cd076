"""The FreshBooks client: listings, objects by id, the login's identity, webhook callbacks.

Every requests exception and every FreshBooks error body stops in this package and
leaves as an `fbstampli.errors` error of one line built from hosts, paths and ids,
never from headers or bodies carrying secrets (`session`, `errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from fbstampli.errors import RemoteError
from fbstampli.freshbooks.client.coding import Coding
from fbstampli.freshbooks.client.errors import FilterIgnoredError, NotFoundError
from fbstampli.freshbooks.client.listings import Listings
from fbstampli.freshbooks.client.session import Params, id_chunks, listed_id, result_of
from fbstampli.freshbooks.client.uploads import Uploads
from fbstampli.freshbooks.parse import (
    BusinessMembership,
    Callback,
    parse_bill,
    parse_bill_payment,
    parse_callback,
    parse_memberships,
)
from fbstampli.models import Bill, BillPayment, Vendor, VisState
from fbstampli.models.behaviour import VENDOR_IDS


class FreshBooksClient(Uploads, Coding, Listings):
    """FreshBooks for one account; satisfies `sync.ports.BillSource` structurally."""

    def list_bill_payments(self, *, vis_state: VisState | None = None) -> Iterator[BillPayment]:
        for rows in self._list("bill_payments", "bill_payments", vis_state):
            yield from self._with_bill_currency([parse_bill_payment(row) for row in rows])

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        """The payments of each bill, one `search[billid]` listing per bill.

        If FreshBooks ignored the filter, a page would hold other bills'
        payments: that page is given as it came (the caller sees the foreign
        bill ids) and the bill's listing stops there, so an ignored filter
        costs one page, never the whole payment list once per bill.
        """
        for bill_id in dict.fromkeys(int(i) for i in bill_ids):
            extra: Params = {"search[billid]": bill_id}
            for rows in self._list("bill_payments", "bill_payments", vis_state, extra):
                payments = self._with_bill_currency([parse_bill_payment(row) for row in rows])
                yield from payments
                if any(payment.bill_id != bill_id for payment in payments):
                    break

    def _with_bill_currency(self, payments: list[BillPayment]) -> list[BillPayment]:
        """A payment without a currency code is in its bill's currency: fetch those bills once."""
        missing = {p.bill_id for p in payments if not p.currency_code}
        if not missing:
            return payments
        currencies = {bill.fb_id: bill.currency_code for bill in self.get_bills(missing)}
        return [
            p if p.currency_code else replace(p, currency_code=currencies.get(p.bill_id, ""))
            for p in payments
        ]

    def _by_ids(
        self, resource: str, ids: Iterable[int], vis_state: VisState | None
    ) -> Iterator[list[Any]]:
        for chunk in id_chunks(ids):
            yield from self._list(resource, resource, vis_state, {"search[ids][]": chunk})

    def get_vendors(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Vendor]:
        """Vendors by id, 100 per request; deleted ones only with `vis_state=DELETED`.

        `search[ids][]` on vendors is unconfirmed: an answer naming a vendor not asked
        for means the filter was ignored, a 400 that it is refused; either way each
        vendor is then fetched by its id (for a day, before the filter is tried again).
        """
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if self.learnt.stands(VENDOR_IDS, "ignored", "rejected"):
            return self._vendors_one_by_one(wanted, vis_state)
        found: list[Vendor] = []
        chunks = list(id_chunks(wanted))
        for index, chunk in enumerate(chunks):
            asked = set(chunk)
            rest = [i for later in chunks[index:] for i in later]
            try:
                rows = [
                    row
                    for page in self._list(
                        "bill_vendors", "bill_vendors", vis_state, {"search[ids][]": chunk}
                    )
                    for row in self._only_asked(page, asked)
                ]
            except FilterIgnoredError:
                self.learnt.learn(VENDOR_IDS, "ignored", "a listing by ids named other vendors")
                return [*found, *self._vendors_one_by_one(rest, vis_state)]
            except RemoteError as error:  # a 400 as seen, or any refusal of the filter
                if isinstance(error, NotFoundError):
                    raise
                self.learnt.learn(VENDOR_IDS, "rejected", f"search[ids][] was refused: {error}")
                return [*found, *self._vendors_one_by_one(rest, vis_state)]
            found.extend(self._vendor(row) for row in rows)
        if wanted:
            self._note(VENDOR_IDS, "honoured", "a listing by ids named only the vendors asked for")
        return found

    @staticmethod
    def _only_asked(rows: list[Any], asked: set[int]) -> list[Any]:
        for row in rows:
            row_id = listed_id(row, "bill_vendors")
            if row_id is None or int(row_id) not in asked:
                raise FilterIgnoredError
        return rows

    def _vendors_one_by_one(self, ids: Iterable[int], vis_state: VisState | None) -> list[Vendor]:
        """Each vendor by id, keeping what a listing with `vis_state` would have shown."""
        found = []
        for vendor_id in ids:
            path = f"{self._account_path('bill_vendors')}/{int(vendor_id)}"
            try:
                body = self._call("GET", path, f"vendor {vendor_id} of account {self._account_id}")
            except NotFoundError:
                continue
            vendor = self._vendor(result_of(body, f"vendor {vendor_id}").get("bill_vendor"))
            deleted = vendor.vis_state == VisState.DELETED
            if deleted == (vis_state == VisState.DELETED):
                found.append(vendor)
        return found

    def get_bills(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Bill]:
        """Bills by id, 100 per request; deleted ones only with `vis_state=DELETED`."""
        return [
            self._listed_bill(row) for rows in self._by_ids("bills", ids, vis_state) for row in rows
        ]

    def get_bill(self, bill_id: int) -> Bill | None:
        """One bill whatever its vis_state (deleted bills stay readable by id); None if unknown."""
        path = f"{self._account_path('bills')}/{int(bill_id)}"
        try:
            body = self._call("GET", path, f"bill {bill_id} of account {self._account_id}")
        except NotFoundError:
            return None
        bill = result_of(body, f"bill {bill_id}").get("bill")
        return parse_bill(bill)

    # ---- identity --------------------------------------------------------------------------

    def me(self) -> list[BusinessMembership]:
        """The businesses this login reaches, to pick the `account_id` from."""
        body = self._call("GET", "/auth/api/v1/users/me", "the identity of this login")
        response = body.get("response") if isinstance(body, Mapping) else None
        return parse_memberships(response)

    # ---- webhook callbacks -----------------------------------------------------------------

    def _callbacks_path(self, callback_id: int | None = None) -> str:
        path = f"/events/account/{quote(self._account_id, safe='')}/events/callbacks"
        return path if callback_id is None else f"{path}/{int(callback_id)}"

    def register_callback(self, event: str, uri: str) -> Callback:
        """Create a callback (unverified); FreshBooks then POSTs the verifier to `uri`."""
        body = self._call(
            "POST",
            self._callbacks_path(),
            f"registering a {event} callback",
            json_body={"callback": {"event": event, "uri": uri}},
            idempotent=False,
        )
        return parse_callback(result_of(body, "the new callback").get("callback"))

    def list_callbacks(self) -> list[Callback]:
        what = f"the callbacks list of account {self._account_id}"
        pages = self._pages(self._callbacks_path(), "callbacks", what, {})
        return [parse_callback(row) for rows in pages for row in rows]

    def verify_callback(self, callback_id: int, verifier: str) -> Callback:
        body = self._call(
            "PUT",
            self._callbacks_path(callback_id),
            f"verifying callback {callback_id}",
            json_body={"callback": {"verifier": verifier}},
        )
        return parse_callback(result_of(body, f"callback {callback_id}").get("callback"))

    def resend_verification(self, callback_id: int) -> None:
        self._call(
            "PUT",
            self._callbacks_path(callback_id),
            f"resending the verification of callback {callback_id}",
            json_body={"callback": {"resend": True}},
        )

    def delete_callback(self, callback_id: int) -> None:
        self._call("DELETE", self._callbacks_path(callback_id), f"deleting callback {callback_id}")
