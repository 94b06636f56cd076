"""`status --stuck` lists every object not yet in Stampli, each with its reason and next try."""

from tests.e2e.conftest import Connected


def active(records: dict[int, dict[str, object]]) -> list[int]:
    return [key for key, record in records.items() if record.get("vis_state", 0) != 1]


def test_stuck_lists_the_bills_waiting_behind_failing_vendors(connected: Connected) -> None:
    connected.sftp.faults.deny_writes = True
    assert connected.run("push-bills").code == 1
    stuck = connected.run("status", "--stuck").stdout
    lines = stuck.splitlines()
    data = connected.freshbooks.data
    for bill_id in active(data.bills):
        line = next(line for line in lines if line.startswith(f"bill {bill_id} "))
        assert "queued since" in line
        assert "goes with the next run" in line
    for vendor_id in active(data.vendors):
        line = next(line for line in lines if line.startswith(f"vendor {vendor_id} "))
        assert "next try" in line
    assert connected.inbound_files() == []
