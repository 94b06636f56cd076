"""`status` exits 1 for a failure that may pass by itself (a run that ended 1 or 75, a
delivery waiting to retry) only once it has lasted `monitoring.failing_attention_hours`;
every other reason at once (issue #24, item 5).

The outage is real (the SFTP server stopped); its age is real time against a setting made
small, and the streak's start is what the runs recorded.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import Connected

LASTED = {"FBSTAMPLI_MONITORING_FAILING_ATTENTION_HOURS": "0.0001"}  # 0.36 s


def status_json(connected: Connected, env: dict[str, str] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(connected.run("status", "--json", env=env).stdout)
    return document


def test_a_fresh_outage_is_shown_but_not_yet_an_exit_1_matter(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    connected.sftp.stop()
    for bill_id in (1, 2):
        connected.freshbooks.update_bill(bill_id, bill_number=f"INV-OUT{bill_id}")
    assert connected.run("push-bills").code == 75

    fresh = connected.run("-q", "status")
    assert (fresh.code, fresh.stdout, fresh.stderr) == (0, "", "")
    document = status_json(connected)
    assert document["attention"] == []
    run = document["runs"]["push-bills"]
    assert (run["exit_code"], run["failing_since"]) == (75, run["started_at"])
    assert {item["status"] for item in document["deliveries"]["failing"]} == {"failed"}
    screen = connected.run("status")
    assert "failing" in screen.stdout  # the screen still shows what waits, and why

    time.sleep(0.5)
    lasted = connected.run("-q", "status", env=LASTED)
    assert lasted.code == 1
    assert lasted.stderr.strip() == (
        "fbstampli: needs attention: the last push-bills did not end well; "
        "2 not in Stampli yet after failing"
    )


@pytest.mark.slow
def test_the_failure_lasts_from_the_first_failed_run_until_one_ends_well(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    port, pkey, password = connected.sftp.port, connected.sftp.host_pkey, connected.sftp.password
    connected.sftp.stop()
    connected.freshbooks.update_bill(1, bill_number="INV-OUT")
    assert connected.run("push-bills").code == 75
    first = status_json(connected)["runs"]["push-bills"]["started_at"]
    connected.freshbooks.update_bill(2, bill_number="INV-OUT-AGAIN")  # a new try, failing too
    assert connected.run("push-bills").code == 75
    again = status_json(connected)["runs"]["push-bills"]
    assert again["started_at"] > first
    assert again["failing_since"] == first  # the streak began at the first failure

    from fbstampli.sandbox.sftp_server import SftpServer

    with SftpServer(connected.sftp.root, port=port, host_pkey=pkey, password=password) as back:
        connected.sftp = back
        assert connected.run("retry", "--failed").code == 0
        assert connected.run("push-bills").code == 0
        healed = status_json(connected, env=LASTED)
    assert "failing_since" not in healed["runs"]["push-bills"]
    assert healed["attention"] == []


def test_what_does_not_pass_by_itself_is_attention_at_once(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    broken = connected.sftp.root / "outbound" / "stampli_payments_20261201.csv"
    broken.write_text("garbage\n")
    assert connected.run("pull-stampli", "--now").code == 1
    result = connected.run("-q", "status")  # the default: 2 hours for what may pass
    assert result.code == 1
    assert result.stderr.strip() == "fbstampli: needs attention: 1 quarantined export file(s)"
    time.sleep(0.5)
    document = status_json(connected, env=LASTED)
    assert document["attention"] == [
        "the last pull-stampli did not end well",
        "1 quarantined export file(s)",
    ]
