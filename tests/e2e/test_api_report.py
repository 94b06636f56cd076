"""`doctor --api-report`: what FreshBooks answered, with no value from the account in it."""

import json
from pathlib import Path

import pytest

from fbstampli.sandbox.freshbooks import Business, FreshBooksSandbox
from fbstampli.sandbox.realities import parse_realities
from fbstampli.sandbox.sftp_server import SftpServer
from tests.e2e.conftest import connect_quickly

ACCOUNT = "QZXSECRET9"
SECRETS = {
    "account id": ACCOUNT,
    "business id": "987654321",
    "business name": "Hush Holdings Secret",
    "vendor name": "Zyxwv Secretive Supplies",
    "contact": "Quillon",
    "email": "secret.person@hush.example",
    "phone": "+1-555-867-5309",
    "city": "Secretville",
    "bill number": "SECRET-INV-4242",
    "line": "Classified widgets",
    "amount": "98765.43",
    "payment note": "hush money",
}


def seeded(fb: FreshBooksSandbox) -> None:
    fb.seed(vendors=3, bills=5, payments=2, seed=3)
    vendor = fb.create_vendor(
        SECRETS["vendor name"],
        primary_contact_first_name=SECRETS["contact"],
        primary_contact_email=SECRETS["email"],
        phone=SECRETS["phone"],
        city=SECRETS["city"],
    )
    bill = fb.create_bill(
        vendor,
        bill_number=SECRETS["bill number"],
        lines=[{"description": SECRETS["line"], "unit_cost": SECRETS["amount"]}],
    )
    fb.create_payment(bill, amount="12.34", note=SECRETS["payment note"])


@pytest.mark.parametrize(
    ("reality", "sort", "lines"),
    [("none", "honoured", "included"), ("all", "rejected", "omitted")],
)
def test_api_report_shows_each_probe_and_no_account_value(
    tmp_path: Path, sftp_server: SftpServer, reality: str, sort: str, lines: str
) -> None:
    business = Business(ACCOUNT, int(SECRETS["business id"]), SECRETS["business name"])
    with FreshBooksSandbox(businesses=[business]) as fb:
        seeded(fb)
        fb.realities = parse_realities(reality)
        connected = connect_quickly(tmp_path / "home", fb, sftp_server)
        assert connected.run("push-bills").code == 0
        report_file = tmp_path / "api-report.json"
        result = connected.run("doctor", "--api-report", str(report_file))
        assert result.code == 0, result.output
        # doctor shows what the runs learnt, and when.
        assert f"ok   FreshBooks sort by updated_at (bills): {sort}, checked 20" in result.stdout
        assert f"ok   FreshBooks bill lines in list responses: {lines}, checked" in result.stdout
        assert f"Wrote 8 FreshBooks probes to {report_file}." in result.stdout
        text = report_file.read_text(encoding="utf-8")
        secrets = {**SECRETS, **connected.named_secrets()}
        leaked = [name for name, value in secrets.items() if value.casefold() in text.casefold()]
        assert leaked == []
        report = json.loads(text)
        conclusions = {probe["probe"]: probe["conclusion"] for probe in report["probes"]}
        assert conclusions["sort bills"] == f"sort by updated_at (bills): {sort}"
        assert conclusions["bill lines"] == f"bill lines in list responses: {lines}"
        bills = next(p for p in report["probes"] if p["probe"] == "bill lines")["requests"][0]
        assert bills["path"] == "/accounting/account/{account_id}/bills/bills"
        assert bills["status"] == 200
        shape = bills["body_shape"]["response"]["result"]
        assert shape["bills"][0]["bill_number"] == "str"
        assert ("lines" in shape["bills"][0]) == (lines == "included")
