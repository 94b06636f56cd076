"""`fbstampli sandbox freshbooks add-bill|edit-bill|delete-bill|…`: change a running sandbox.

Each command is one call to the sandbox's admin face (`sandbox/fb_admin.py`) and prints
what changed and where FreshBooks' webhook went, so a newcomer can watch a change reach
Stampli's inbound (through `serve-webhook`, or the next `sync`) outside `demo`.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from fbstampli.cli.app import MAX_ID, FriendlyCommand, JsonFlag, examples, in_range
from fbstampli.cli.sandbox import freshbooks_app

Handler = TypeVar("Handler", bound=Callable[..., None])
DEFAULT_URL = "http://127.0.0.1:8765"  # `fbstampli sandbox freshbooks`'s default address

Url = Annotated[
    str,
    typer.Option(
        "--url",
        metavar="URL",
        envvar="FBSTAMPLI_FRESHBOOKS_API_URL",  # the terminal pointed at the sandbox already
        show_envvar=True,
        help="The running sandbox's address, as it printed it.",
    ),
]
Account = Annotated[
    str,
    typer.Option(
        "--account",
        metavar="ID",
        help="Which business, by account id or business id (default: the first).",
    ),
]


def _id(name: str, what: str) -> Any:
    return typer.Option(name, metavar="ID", callback=in_range(1, MAX_ID), help=what)


Amount = Annotated[
    str | None, typer.Option("--amount", metavar="AMOUNT", help="An amount, e.g. 12.50.")
]


def _send(
    url: str,
    method: str,
    path: str,
    fields: dict[str, Any],
    account: str,
    as_json: bool,
) -> None:
    from fbstampli.cli import output
    from fbstampli.sandbox.admin_client import call_admin

    answer = call_admin(
        url, method, path, {k: v for k, v in fields.items() if v is not None}, account
    )
    if as_json:
        output.write_json(answer)
        raise typer.Exit(0)
    output.banner_line(str(answer.get("message", "done")))
    webhooks = answer.get("webhooks") or []
    for hook in webhooks:
        outcome = (
            f"delivered (HTTP {hook['status']})"
            if hook.get("status") is not None
            else f"not delivered ({hook.get('error') or 'unreachable'})"
        )
        output.banner_line(f"  webhook {hook.get('event')} -> {hook.get('uri')}: {outcome}")
    if not webhooks:
        output.banner_line(
            "  no webhook: no verified callback for it (run `fbstampli serve-webhook` and "
            "`fbstampli webhooks register --url http://127.0.0.1:8787/webhooks/freshbooks`); "
            "the next `fbstampli sync` picks the change up"
        )
    raise typer.Exit(0)


def _command(name: str, summary: str, *lines: str) -> Callable[[Handler], Handler]:
    return freshbooks_app.command(
        name,
        cls=FriendlyCommand,
        short_help=summary,
        help=summary,
        epilog=examples(*lines),
        context_settings={"help_option_names": ["-h", "--help"]},
    )


# ---- bills --------------------------------------------------------------------------------------


@_command("add-bill", "Add a bill (one line) to a vendor.", "fbstampli sandbox freshbooks add-bill")
def add_bill(
    vendor: Annotated[int | None, _id("--vendor", "The vendor (default: the first).")] = None,
    amount: Amount = None,
    description: Annotated[str | None, typer.Option("--description", help="Its line.")] = None,
    number: Annotated[str | None, typer.Option("--number", help="Its bill number.")] = None,
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    fields = {"vendor": vendor, "amount": amount, "description": description, "number": number}
    _send(url, "POST", "/_sandbox/bills", fields, account, as_json)


@_command(
    "edit-bill",
    "Change a bill: its amount (one line), description, number or due days.",
    "fbstampli sandbox freshbooks edit-bill --bill 5 --amount 12.50",
)
def edit_bill(
    bill: Annotated[int, _id("--bill", "The bill to change.")],
    amount: Amount = None,
    description: Annotated[str | None, typer.Option("--description", help="New text.")] = None,
    number: Annotated[str | None, typer.Option("--number", help="New bill number.")] = None,
    due_days: Annotated[
        int | None,
        typer.Option("--due-days", metavar="N", callback=in_range(0, 3650), help="Due after N."),
    ] = None,
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    fields = {"amount": amount, "description": description, "number": number, "due_days": due_days}
    _send(url, "PUT", f"/_sandbox/bills/{bill}", fields, account, as_json)


@_command("delete-bill", "Delete a bill.", "fbstampli sandbox freshbooks delete-bill --bill 5")
def delete_bill(
    bill: Annotated[int, _id("--bill", "The bill to delete.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "DELETE", f"/_sandbox/bills/{bill}", {}, account, as_json)


@_command(
    "restore-bill", "Restore a deleted bill.", "fbstampli sandbox freshbooks restore-bill --bill 5"
)
def restore_bill(
    bill: Annotated[int, _id("--bill", "The bill to restore.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "POST", f"/_sandbox/bills/{bill}/restore", {}, account, as_json)


@_command(
    "attach",
    "Attach a small generated PDF to a bill (its `attachment`).",
    "fbstampli sandbox freshbooks attach --bill 5",
)
def attach(
    bill: Annotated[int, _id("--bill", "The bill to attach it to.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "POST", f"/_sandbox/bills/{bill}/attachment", {}, account, as_json)


# ---- vendors ------------------------------------------------------------------------------------


@_command(
    "add-vendor", "Add a vendor.", "fbstampli sandbox freshbooks add-vendor --name 'Acme Ltd.'"
)
def add_vendor(
    name: Annotated[str | None, typer.Option("--name", help="Its name.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Its contact's email.")] = None,
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "POST", "/_sandbox/vendors", {"name": name, "email": email}, account, as_json)


@_command(
    "edit-vendor",
    "Change a vendor's name or email.",
    "fbstampli sandbox freshbooks edit-vendor --vendor 3 --name 'Acme Ltd.'",
)
def edit_vendor(
    vendor: Annotated[int, _id("--vendor", "The vendor to change.")],
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="New email.")] = None,
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    fields = {"name": name, "email": email}
    _send(url, "PUT", f"/_sandbox/vendors/{vendor}", fields, account, as_json)


@_command(
    "delete-vendor", "Delete a vendor.", "fbstampli sandbox freshbooks delete-vendor --vendor 3"
)
def delete_vendor(
    vendor: Annotated[int, _id("--vendor", "The vendor to delete.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "DELETE", f"/_sandbox/vendors/{vendor}", {}, account, as_json)


@_command(
    "restore-vendor",
    "Restore a deleted vendor.",
    "fbstampli sandbox freshbooks restore-vendor --vendor 3",
)
def restore_vendor(
    vendor: Annotated[int, _id("--vendor", "The vendor to restore.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "POST", f"/_sandbox/vendors/{vendor}/restore", {}, account, as_json)


# ---- bill payments ------------------------------------------------------------------------------


@_command(
    "add-payment",
    "Pay a bill (default: what it still owes).",
    "fbstampli sandbox freshbooks add-payment --bill 5 --amount 10",
)
def add_payment(
    bill: Annotated[int, _id("--bill", "The bill to pay.")],
    amount: Amount = None,
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "POST", "/_sandbox/payments", {"bill": bill, "amount": amount}, account, as_json)


@_command(
    "edit-payment",
    "Change a bill payment's amount or note.",
    "fbstampli sandbox freshbooks edit-payment --payment 2 --amount 5",
)
def edit_payment(
    payment: Annotated[int, _id("--payment", "The payment to change.")],
    amount: Amount = None,
    note: Annotated[str | None, typer.Option("--note", help="New note.")] = None,
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    fields = {"amount": amount, "note": note}
    _send(url, "PUT", f"/_sandbox/payments/{payment}", fields, account, as_json)


@_command(
    "delete-payment",
    "Delete a bill payment.",
    "fbstampli sandbox freshbooks delete-payment --payment 2",
)
def delete_payment(
    payment: Annotated[int, _id("--payment", "The payment to delete.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "DELETE", f"/_sandbox/payments/{payment}", {}, account, as_json)


@_command(
    "restore-payment",
    "Restore a deleted bill payment.",
    "fbstampli sandbox freshbooks restore-payment --payment 2",
)
def restore_payment(
    payment: Annotated[int, _id("--payment", "The payment to restore.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    _send(url, "POST", f"/_sandbox/payments/{payment}/restore", {}, account, as_json)


# ---- webhooks -----------------------------------------------------------------------------------


@_command(
    "fire-webhook",
    "Send FreshBooks' signed webhook for an object again, to every registered callback.",
    "fbstampli sandbox freshbooks fire-webhook --event bill.update --id 5",
)
def fire_webhook(
    event: Annotated[
        str,
        typer.Option(
            "--event",
            help="bill.create, bill.update, bill.delete, bill_vendor.create, "
            "bill_vendor.update or bill_vendor.delete.",
        ),
    ],
    object_id: Annotated[int, _id("--id", "The bill's or vendor's id.")],
    url: Url = DEFAULT_URL,
    account: Account = "",
    as_json: JsonFlag = False,
) -> None:
    fields = {"event": event, "id": object_id}
    _send(url, "POST", "/_sandbox/webhooks", fields, account, as_json)
