"""`status --stuck` lists every object not yet in Stampli, each with its reason and next try."""

from tests.e2e.conftest import Connected


def active(records: dict[int, dict[str, object]]) -> list[int]:
    return [key for key, record in records.items() if record.get("vis_state", 0) != 1]


def test_stuck_lists_what_waits_behind_the_failing_masters(connected: Connected) -> None:
    """The coding list goes first (issue 26): its failing upload is what the vendors and bills
    wait behind."""
    connected.sftp.faults.deny_writes = True
    assert connected.run("push-bills").code == 1
    stuck = connected.run("status", "--stuck").stdout
    lines = stuck.splitlines()
    data = connected.freshbooks.data
    for category_id in data.categories:
        line = next(line for line in lines if line.startswith(f"expense category {category_id} "))
        assert "next try" in line
    for tax_id in data.taxes:  # the other coding list, not tried behind the failed one
        line = next(line for line in lines if line.startswith(f"tax {tax_id} "))
        assert "goes with the next run" in line
    for kind, records in (("vendor", data.vendors), ("bill", data.bills)):
        for record_id in active(records):
            line = next(line for line in lines if line.startswith(f"{kind} {record_id} "))
            assert "queued since" in line
            assert "goes with the next run" in line
    assert connected.inbound_files() == []
