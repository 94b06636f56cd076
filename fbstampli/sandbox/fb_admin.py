"""The sandbox's admin face, `/_sandbox/…`: change a running sandbox by hand, as FreshBooks would.

`fbstampli sandbox freshbooks edit-bill --bill 5 --amount 12.50` and its siblings call
these routes, so a newcomer can watch an edit, a deletion and a webhook reach Stampli's
inbound without writing Python. Each change goes through `AccountData`'s mutation API,
exactly as the tests' changes do: `updated_at` moves, and the matching event is POSTed,
signed, to every verified callback (`bill.update`, `bill.delete`, `bill_vendor.create`, …).

Not FreshBooks' API: no OAuth, JSON in and out, only on the sandbox's own port.

    POST   /_sandbox/{bills|vendors|payments}           add (JSON fields; see `_create`)
    PUT    /_sandbox/{bills|vendors|payments}/{id}      edit
    DELETE /_sandbox/{bills|vendors|payments}/{id}      delete (vis_state 1)
    POST   /_sandbox/{bills|vendors|payments}/{id}/restore
    POST   /_sandbox/bills/{id}/attachment              attach a small generated PDF
    GET    /_sandbox/attachments/{jwt}                  that PDF's bytes
    POST   /_sandbox/webhooks                           fire `{"event", "id"}` again
    GET    /_sandbox/accounts                           the businesses served

`?account=` (an account id or a business id) picks a business; the first by default.
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from fbstampli.sandbox.fb_data import AccountData, Answer, JsonObject

# The running `FreshBooksSandbox`. Not imported, even for its type: it builds the HTTP face
# that calls this module, and the layering admits no cycle, type-only ones included.
Sandbox = Any

PREFIX = "/_sandbox"
KINDS = {"bills": "bill", "vendors": "vendor", "payments": "payment"}
_OBJECT = re.compile(
    r"^/_sandbox/(?P<kind>bills|vendors|payments)(?:/(?P<id>\d+)(?:/(?P<action>restore|attachment))?)?$"
)
_EVENT_NAME = re.compile(r"^(bill|bill_vendor)\.(create|update|delete)$")


def is_admin(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def admin_answer(
    sandbox: Sandbox, method: str, path: str, query: dict[str, list[str]], body: bytes
) -> Answer:
    """The answer to one admin request; refusals are `Answer`s with a `message` to show."""
    try:
        fields = json.loads(body or b"{}")
    except ValueError:
        return _refuse(400, "the body is not JSON")
    if not isinstance(fields, dict):
        return _refuse(400, "the body is not a JSON object")
    try:
        return _dispatch(sandbox, method, path.rstrip("/"), query, fields)
    except Answer as answer:
        return answer


def _dispatch(
    sandbox: Sandbox,
    method: str,
    path: str,
    query: dict[str, list[str]],
    fields: JsonObject,
) -> Answer:
    if path == f"{PREFIX}/accounts" and method == "GET":
        listed = [
            {"account_id": b.account_id, "business_id": b.business_id, "name": b.name}
            for b in sandbox.businesses
        ]
        return Answer(200, {"accounts": listed})
    if path.startswith(f"{PREFIX}/attachments/") and method == "GET":
        upload = sandbox.uploads.get(path.rsplit("/", 1)[1])
        if upload is None:
            return _refuse(404, "no such attachment")
        pdf = upload.content
        encoded = base64.b64encode(pdf).decode("ascii")
        return Answer(200, {"media_type": "application/pdf", "size": len(pdf), "base64": encoded})
    account = _account(sandbox, query)
    if path == f"{PREFIX}/webhooks" and method == "POST":
        return _fire(sandbox, account, str(fields.get("event", "")), _whole(fields.get("id"), "id"))
    match = _OBJECT.match(path)
    if match is None:
        return _refuse(404, f"no admin route for {method} {path}")
    kind = KINDS[match["kind"]]
    if match["id"] is None:
        if method != "POST":
            return _refuse(405, f"{method} {path}: use POST to add a {kind}")
        return _create(sandbox, account, kind, fields)
    object_id = int(match["id"])
    record = _record(account, kind, object_id)
    action = match["action"]
    if action == "restore" and method == "POST":
        return _change(
            sandbox, account, kind, object_id, {"vis_state": 0}, f"restored {kind} {object_id}"
        )
    if action == "attachment" and method == "POST" and kind == "bill":
        return _attach(sandbox, account, record)
    if action is None and method == "DELETE":
        return _change(
            sandbox, account, kind, object_id, {"vis_state": 1}, f"deleted {kind} {object_id}"
        )
    if action is None and method == "PUT":
        said = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in fields.items())
        edits = _edits(kind, record, fields)
        return _change(
            sandbox, account, kind, object_id, edits, f"edited {kind} {object_id}: {said}"
        )
    return _refuse(405, f"no admin route for {method} {path}")


# ---- the changes --------------------------------------------------------------------------------


def _create(sandbox: Sandbox, account: AccountData, kind: str, fields: JsonObject) -> Answer:
    with sandbox.capture_deliveries() as delivered:
        if kind == "vendor":
            name = str(fields.get("name") or "New Vendor")
            object_id = account.create_vendor(
                name, primary_contact_email=str(fields.get("email", ""))
            )
            summary = f"added vendor {object_id} {name!r}"
        elif kind == "bill":
            vendor = _whole(fields.get("vendor"), "vendor") if "vendor" in fields else None
            vendor = vendor or next(
                (v for v, r in account.vendors.items() if r["vis_state"] == 0), 0
            )
            _record(account, "vendor", vendor)
            amount = _amount(fields.get("amount", "100.00"))
            line = {
                "description": str(fields.get("description") or "Services"),
                "unit_cost": amount,
            }
            number = str(fields["number"]) if fields.get("number") else None
            object_id = account.create_bill(vendor, lines=[line], bill_number=number)
            summary = f"added bill {object_id} for vendor {vendor}, {amount} before tax"
        else:
            bill = _whole(fields.get("bill"), "bill")
            _record(account, "bill", bill)
            paying = _amount(fields["amount"]) if fields.get("amount") else None
            object_id = account.create_payment(bill, amount=paying)
            paid = account.payments[object_id]["amount"]
            summary = f"added payment {object_id} of {paid} on bill {bill}"
    return _report(summary, kind, object_id, delivered)


def _change(
    sandbox: Sandbox,
    account: AccountData,
    kind: str,
    object_id: int,
    changes: JsonObject,
    summary: str,
) -> Answer:
    with sandbox.capture_deliveries() as delivered:
        if kind == "bill":
            account.update_bill(object_id, **changes)
        elif kind == "vendor":
            account.update_vendor(object_id, **changes)
        else:
            account.update_payment(object_id, **changes)
    if kind == "payment":
        summary += f" (bill {account.payments[object_id]['billid']})"
    return _report(summary, kind, object_id, delivered)


def _edits(kind: str, record: JsonObject, fields: JsonObject) -> JsonObject:
    """What `fields` changes on `record`; a bill's amount becomes its one line's unit cost."""
    changes: JsonObject = {}
    if kind == "bill":
        if "amount" in fields or "description" in fields:
            first = record["lines"][0]
            line = {**first, "category": list(first["category"]), "quantity": "1"}
            if "amount" in fields:
                line["unit_cost"] = _amount(fields["amount"])
            if "description" in fields:
                line["description"] = str(fields["description"])
                changes["overall_description"] = line["description"]
            changes["lines"] = [line]
        if "number" in fields:
            changes["bill_number"] = str(fields["number"])
        if "due_days" in fields:
            changes["due_offset_days"] = _whole(fields["due_days"], "due_days")
    elif kind == "vendor":
        if "name" in fields:
            changes["vendor_name"] = str(fields["name"])
        if "email" in fields:
            changes["primary_contact_email"] = str(fields["email"])
    else:
        if "amount" in fields:
            changes["amount"] = _amount(fields["amount"])
        if "note" in fields:
            changes["note"] = str(fields["note"])
    if not changes:
        raise _refuse(400, f"nothing to change on this {kind}: say what to change")
    return changes


def _attach(sandbox: Sandbox, account: AccountData, bill: JsonObject) -> Answer:
    """A new PDF for the bill, kept where FreshBooks' uploads API serves it from."""
    pdf = small_pdf(f"Bill {bill['bill_number']} (FreshBooks sandbox)")
    attachment = sandbox.uploads.add(pdf, "application/pdf")
    token = str(attachment["jwt"])
    with sandbox.capture_deliveries() as delivered:
        account.update_bill(int(bill["id"]), attachment=attachment)
    summary = f"attached a {len(pdf)}-byte PDF to bill {bill['id']} ({PREFIX}/attachments/{token})"
    return _report(summary, "bill", int(bill["id"]), delivered)


def _fire(sandbox: Sandbox, account: AccountData, event: str, object_id: int) -> Answer:
    """The event again, as FreshBooks sends it: signed, to every verified callback for it."""
    if not _EVENT_NAME.match(event):
        raise _refuse(
            400,
            f"event {event!r}: give bill.create, bill.update, bill.delete, "
            "bill_vendor.create, bill_vendor.update or bill_vendor.delete",
        )
    deliveries = sandbox.send_event(event, object_id, account_id=account.account_id)
    summary = f"fired {event} for object {object_id} of account {account.account_id}"
    return Answer(200, {"message": summary, "id": object_id, "webhooks": _rendered(deliveries)})


def _report(summary: str, kind: str, object_id: int, delivered: list[Any]) -> Answer:
    return Answer(
        200,
        {"message": summary, "kind": kind, "id": object_id, "webhooks": _rendered(delivered)},
    )


def _rendered(deliveries: list[Any]) -> list[JsonObject]:
    return [
        {
            "event": dict(delivery.form).get("name", "verification"),
            "uri": delivery.uri,
            "status": delivery.status,
            "error": delivery.error,
        }
        for delivery in deliveries
    ]


# ---- lookups and checks -------------------------------------------------------------------------


def _account(sandbox: Sandbox, query: dict[str, list[str]]) -> AccountData:
    wanted = (query.get("account") or [""])[0]
    if not wanted:
        data: AccountData = sandbox.data
        return data
    for business in sandbox.businesses:
        if wanted in (business.account_id, str(business.business_id)):
            account: AccountData = sandbox.accounts[business.account_id]
            return account
    served = ", ".join(f"{b.account_id} (business {b.business_id})" for b in sandbox.businesses)
    raise _refuse(404, f"no account {wanted} in this sandbox; it serves {served}")


def _record(account: AccountData, kind: str, object_id: int) -> JsonObject:
    table = {"bill": account.bills, "vendor": account.vendors, "payment": account.payments}[kind]
    record = table.get(object_id)
    if record is None:
        raise _refuse(404, f"no {kind} {object_id} in account {account.account_id}")
    return record


def _amount(value: Any) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _refuse(400, f"amount {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        raise _refuse(400, f"amount {value!r}: give 0 or more, below a trillion")
    return str(amount.quantize(Decimal("0.01")))


def _whole(value: Any, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise _refuse(400, f"{name} {value!r} is not a whole number") from None
    if number < 1:
        raise _refuse(400, f"{name} {number}: give 1 or more")
    return number


def _refuse(status: int, message: str) -> Answer:
    return Answer(status, {"message": message})


# ---- a small PDF --------------------------------------------------------------------------------


def small_pdf(text: str) -> bytes:
    """A one-page PDF saying `text`: valid (xref offsets counted), a few hundred bytes."""
    safe = re.sub(r"[^A-Za-z0-9 .,:;()#_-]", "?", text)[:80]
    stream = f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
