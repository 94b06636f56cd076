"""One object that cannot be written into a Stampli file is held; the queue, the pull and
reconcile go on, and the object goes once the template is fixed."""

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from tests.e2e.conftest import Connected

REPO = Path(__file__).resolve().parents[2]
KYOTO = "Kyōto 京都"


@pytest.fixture
def freshbooks() -> Iterator[FreshBooksSandbox]:
    """50 good vendors with their bills and payments, and one vendor cp1252 cannot write."""
    with FreshBooksSandbox() as sandbox:
        sandbox.seed(vendors=50, bills=50, payments=10, seed=11)
        vendor_id = sandbox.data.create_vendor(KYOTO)
        bill_id = sandbox.data.create_bill(
            vendor_id,
            bill_number="KY-1",
            lines=[{"description": "Tea", "quantity": 1, "unit_cost": "10.00"}],
        )
        sandbox.data.create_payment(bill_id)
        yield sandbox


def template(tmp_path: Path, encoding: str) -> dict[str, str]:
    text = (REPO / "examples" / "stampli-template.toml").read_text(encoding="utf-8")
    path = tmp_path / f"template-{encoding}.toml"
    path.write_text(text.replace('encoding = "utf-8"', f'encoding = "{encoding}"'))
    return {"FBSTAMPLI_STAMPLI_TEMPLATE": str(path)}


def delivered(connected: Connected, suffix: str, column: str) -> Counter[str]:
    """In how many files ending `suffix` each id reached the inbound folder (a bill: a row a
    line, in one file)."""
    seen: Counter[str] = Counter()
    for path in connected.inbound.iterdir():
        if path.name.endswith(suffix):
            data = path.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("cp1252")
            seen.update({row[column] for row in csv.DictReader(io.StringIO(text))})
    return seen


def active(records: dict[int, dict[str, object]]) -> list[int]:
    return [key for key, record in records.items() if record.get("vis_state", 0) != 1]


def kyoto_ids(connected: Connected) -> tuple[str, str, str]:
    data = connected.freshbooks.data
    vendor = next(i for i, v in data.vendors.items() if v["vendor_name"] == KYOTO)
    bill = next(i for i, b in data.bills.items() if b["vendorid"] == vendor)
    payment = next(i for i, p in data.payments.items() if p["billid"] == bill)
    return str(vendor), str(bill), str(payment)


def test_a_vendor_cp1252_cannot_write_is_held_and_the_rest_flows(
    connected: Connected, tmp_path: Path
) -> None:
    narrow = template(tmp_path, "cp1252")
    vendor, bill, payment = kyoto_ids(connected)
    result = connected.run("-q", "sync", env=narrow)
    assert result.code == 1, result.stderr
    assert f'vendor "{KYOTO}" (FreshBooks id {vendor}) cannot be written' in result.stderr
    assert "column 'Vendor Name': 'ō' cannot be written in cp1252" in result.stderr
    vendors = delivered(connected, "-vendors.csv", "FreshBooks Vendor ID")
    bills = delivered(connected, "-bills.csv", "FreshBooks Bill ID")
    payments = delivered(connected, "-payments.csv", "FreshBooks Payment ID")
    data = connected.freshbooks.data
    assert set(vendors) == {str(i) for i in active(data.vendors)} - {vendor}
    assert set(bills) == {str(i) for i in active(data.bills)} - {bill}
    assert set(payments) == {str(i) for i in active(data.payments)} - {payment}
    assert len(vendors) >= 45
    assert len(bills) >= 45
    status = json.loads(connected.run("status", "--json", env=narrow).stdout)
    assert {"pull-stampli", "reconcile"} <= set(status["runs"])  # the run went on past it
    stuck = connected.run("status", "--stuck", env=narrow)
    assert KYOTO in stuck.stdout
    assert "KY-1" in stuck.stdout
    assert "Nothing is stuck" not in stuck.stdout

    again = connected.run("-q", "sync", env=narrow)  # still held, nothing sent twice
    assert again.code == 1
    assert KYOTO in again.stderr

    fixed = connected.run("-q", "sync", env=template(tmp_path, "utf-8"))
    assert fixed.code == 0, fixed.stderr
    for suffix, column, wanted in (
        ("-vendors.csv", "FreshBooks Vendor ID", vendor),
        ("-bills.csv", "FreshBooks Bill ID", bill),
        ("-payments.csv", "FreshBooks Payment ID", payment),
    ):
        counts = delivered(connected, suffix, column)
        assert counts[wanted] == 1
        assert set(counts.values()) == {1}, suffix  # 0 duplicates
    assert "Nothing is stuck" in connected.run("status", "--stuck").stdout


def test_retry_sends_a_held_vendor_once_the_template_is_fixed(
    connected: Connected, tmp_path: Path
) -> None:
    vendor, _, _ = kyoto_ids(connected)
    assert connected.run("-q", "push-bills", env=template(tmp_path, "cp1252")).code == 1
    result = connected.run("retry", "--vendor", vendor, env=template(tmp_path, "utf-8"))
    assert result.code == 0, result.stderr
    assert delivered(connected, "-vendors.csv", "FreshBooks Vendor ID")[vendor] == 1
