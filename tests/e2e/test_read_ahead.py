"""A first sync reads its listing ahead in a worker thread: failures there end the run as before.

FreshBooks fails on page 2 of the bills while page 1's slice is being ingested;
the run must end with the same exit code and one-line message a sequential
listing gave, upload nothing, and leave a state the next run completes.
"""

import csv
import io
from collections import Counter

from fbstampli.errors import ExitCode
from tests.e2e.conftest import Connected
from tests.e2e.test_push import active
from tests.support.cli import one_line, start

ONE_RETRY = {"FBSTAMPLI_FRESHBOOKS_MAX_RETRIES": "1"}


def fail_after_the_first_bills_page(
    connected: Connected, status: int, times: int
) -> tuple[int, str]:
    """Let page 1 of the bills through, then answer `status` `times` times: the run's exit
    code and stderr."""
    connected.freshbooks.seed(vendors=2, bills=250, payments=0, seed=5)
    prefix = f"/accounting/account/{connected.freshbooks.account_id}/bills/bills"
    page_one = connected.freshbooks.hold(prefix, method="GET")
    process = start(connected.home, "push-bills", env=ONE_RETRY)
    try:
        assert page_one.arrived.wait(60), "the push never listed the bills"
        connected.freshbooks.fail(prefix, times=times, status=status, method="GET")
    finally:
        page_one.release()
        _, err = process.communicate(timeout=120)
    return process.returncode, err


def rows_of_file(connected: Connected, name: str) -> list[dict[str, str]]:
    text = (connected.inbound / name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def delivered_once_next_run(connected: Connected) -> None:
    connected.freshbooks.clear_faults()
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    per_bill = Counter(  # files naming each bill (a bill has a row per line)
        bill_id
        for name in connected.inbound_files()
        if name.endswith("-bills.csv")
        for bill_id in {row["FreshBooks Bill ID"] for row in rows_of_file(connected, name)}
    )
    assert set(per_bill) == {str(i) for i in active(connected.freshbooks.data.bills)}
    assert set(per_bill.values()) == {1}


def test_freshbooks_failing_mid_listing_exits_75_with_one_line_and_uploads_nothing(
    connected: Connected,
) -> None:
    code, err = fail_after_the_first_bills_page(connected, status=503, times=2)
    assert code == ExitCode.TEMPFAIL, err
    assert one_line(err), err
    assert "did not answer the bills list" in err
    assert "(page 2)" in err
    assert "HTTP 503" in err
    assert connected.inbound_files() == []
    delivered_once_next_run(connected)


def test_a_token_rejected_mid_listing_after_a_refresh_exits_3_and_keeps_the_new_token(
    connected: Connected,
) -> None:
    # 401, refresh (made and saved by the reading thread), 401 again: log in again.
    code, err = fail_after_the_first_bills_page(connected, status=401, times=2)
    assert code == ExitCode.AUTH, err
    assert one_line(err), err
    assert "even after a refresh" in err
    assert "fbstampli auth login" in err
    assert connected.inbound_files() == []
    # The refresh token spent mid-listing was replaced durably: the next run is logged in.
    delivered_once_next_run(connected)
