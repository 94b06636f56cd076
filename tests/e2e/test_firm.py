"""An accounting firm's installation: several businesses in one tick, run side by side, each
within its time budget; a business whose FreshBooks hangs is cut and goes first next time.

Real parts: the CLI as a new process (it forks a process per business and signals them),
the FreshBooks sandbox, a real SFTP server, and for the hang a TCP server that takes the
connection and never answers.
"""

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fbstampli.clock import SystemClock
from fbstampli.sandbox.fb_data import Business
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.store import open_state
from fbstampli.store.runs import latest_runs
from tests.e2e.test_quiet_rules import AT_ONCE, lock_held
from tests.support.cli import Result, run, start
from tests.support.firm import add_businesses, firm_accounts, point_at, silent_server

pytestmark = pytest.mark.cli_process

# Long enough for a quiet tick of a small business on a loaded machine, short for a test.
BUDGET = {"FBSTAMPLI_SYNC_BUSINESS_BUDGET_SECONDS": "8"}


@dataclass
class Firm:
    folder: Path
    freshbooks: FreshBooksSandbox
    sftp: SftpServer
    accounts: dict[str, Business]
    homes: dict[str, Path]

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run(self.folder, *args, env=env)

    def sent_bill_numbers(self, name: str) -> set[str]:
        numbers: set[str] = set()
        for path in (self.sftp.root / "inbound").glob(f"fbstampli_{name}_*-bills.csv"):
            rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
            numbers |= {row["Invoice Number"] for row in rows}
        return numbers

    def first_tick(self) -> None:
        """The backfill, without a budget: what follows are quiet ticks."""
        done = self.run("-q", "sync", "--all", "--jobs", "2")
        assert done.code == 0, done.stderr

    def started(self, name: str) -> str:
        """When the business's last push-bills started, from its own state."""
        store, _ = open_state(self.homes[name] / "state.db", {}, SystemClock())
        try:
            return str(latest_runs(store)["push-bills"]["started_at"])
        finally:
            store.close()


@pytest.fixture
def firm(tmp_path: Path) -> Iterator[Firm]:
    names = ["alpha", "beta", "gamma", "zulu"]
    accounts = dict(zip(names, firm_accounts(names), strict=True))
    root = tmp_path / "stampli"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    with (
        FreshBooksSandbox(businesses=list(accounts.values())) as freshbooks,
        SftpServer(root) as sftp,
    ):
        folder = tmp_path / "firm"
        homes = add_businesses(folder, freshbooks, sftp, accounts)
        yield Firm(folder, freshbooks, sftp, accounts, homes)


@pytest.mark.slow
def test_a_hanging_business_is_cut_at_its_budget_and_the_others_finish(firm: Firm) -> None:
    firm.first_tick()
    for name, account in firm.accounts.items():
        firm.freshbooks.accounts[account.account_id].create_bill(
            sorted(firm.freshbooks.accounts[account.account_id].vendors)[0],
            bill_number=f"NEW-{name}",
        )
    with silent_server() as hangs:
        point_at(firm.homes["zulu"], hangs)
        result = firm.run("-q", "sync", "--all", "--jobs", "2", env=BUDGET)
    assert result.code == 75, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "fbstampli: business zulu: exit 75: stopped after its time budget of 8 s "
        "(sync.business_budget_seconds); nothing is lost, and it goes first at the next run"
    ]
    for name in ("alpha", "beta", "gamma"):
        assert f"NEW-{name}" in firm.sent_bill_numbers(name), name
    assert "NEW-zulu" not in firm.sent_bill_numbers("zulu")
    first = json.loads((firm.folder / "sync-first.json").read_text())
    assert first["first"] == ["zulu"]
    log = (firm.homes["zulu"] / "logs" / "fbstampli.log").read_text()
    assert "stopped after its time budget" in log
    store, _ = open_state(firm.homes["zulu"] / "state.db", {}, SystemClock())
    try:
        assert latest_runs(store)["push-bills"]["exit_code"] == 75  # unwound, and recorded
    finally:
        store.close()


@pytest.mark.slow
def test_a_business_cut_at_the_last_tick_goes_first_at_the_next(firm: Firm) -> None:
    firm.first_tick()
    with silent_server() as hangs:
        point_at(firm.homes["zulu"], hangs)
        assert firm.run("-q", "sync", "--all", env=BUDGET).code == 75
        # In name order zulu starts last; cut last time, it now starts before alpha.
        assert firm.started("zulu") > firm.started("gamma")
        assert firm.run("-q", "sync", "--all", env=BUDGET).code == 75
    assert firm.started("zulu") < firm.started("alpha")
    point_at(firm.homes["zulu"], firm.freshbooks.url)  # its FreshBooks answers again
    again = firm.run("-q", "sync", "--all", env=BUDGET)
    assert again.code == 0, again.stderr
    assert json.loads((firm.folder / "sync-first.json").read_text())["first"] == []


def test_jobs_never_runs_more_businesses_at_once_than_asked(firm: Firm) -> None:
    holds = {
        name: firm.freshbooks.hold(f"/accounting/account/{account.account_id}/bills", method="GET")
        for name, account in firm.accounts.items()
    }

    def arrived() -> set[str]:
        return {name for name, hold in holds.items() if hold.arrived.is_set()}

    seen: set[str] = set()
    with start(firm.folder, "-q", "sync", "--all", "--jobs", "2") as process:
        try:
            for _ in range(2):
                deadline = time.monotonic() + 60
                while len(arrived() - seen) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1.0)  # a third business, were it running, would have arrived by now
                running = arrived() - seen
                assert len(running) == 2, running
                for name in running:
                    holds[name].release()
                seen |= running
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
        finally:
            for hold in holds.values():
                hold.release()
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert seen == set(firm.accounts)


def test_jobs_without_all_is_a_usage_error(firm: Firm) -> None:
    result = firm.run("--business", "alpha", "sync", "--jobs", "2")
    assert result.code == 2
    assert result.stderr.strip() == (
        "fbstampli: error: --jobs runs several businesses at once: give it with --all"
    )


def test_the_outcome_lines_come_in_name_order_whatever_the_run_order(firm: Firm) -> None:
    (firm.folder / "sync-first.json").write_text(json.dumps({"first": ["zulu", "beta"]}))
    for name in ("beta", "zulu"):
        (firm.homes[name] / "state.key").write_text("0" * 64)  # both fail: exit 4
    result = firm.run("-q", "sync", "--all", "--jobs", "3")
    assert result.code == 4
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["business beta", "business zulu"]


@pytest.mark.slow
def test_status_all_lists_what_needs_attention_first_and_attention_shows_only_those(
    firm: Firm,
) -> None:
    firm.first_tick()
    point_at(firm.homes["beta"], "http://127.0.0.1:9")  # nothing listens: its sync fails
    failed = firm.run("-q", "sync", "--all", env={"FBSTAMPLI_FRESHBOOKS_MAX_RETRIES": "0"})
    assert failed.code == 75, failed.stderr
    (firm.homes["zulu"] / "state.key").write_text("0" * 64)  # zulu's key is lost
    at_once = {"FBSTAMPLI_MONITORING_FAILING_ATTENTION_HOURS": "0"}  # beta: not after 2 h of it
    every = firm.run("status", "--all", env=at_once)
    assert every.code == 1
    rows = [line.split("\t") for line in every.stdout.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["zulu", "beta", "alpha", "gamma"]
    assert rows[0][4].startswith("cannot read its state")
    assert rows[1][4] not in ("", "no")
    assert rows[2][4] == rows[3][4] == "no"
    only = firm.run("status", "--all", "--attention", env=at_once)
    assert only.code == 1
    assert [line.split("\t")[0] for line in only.stdout.strip().splitlines()[1:]] == [
        "zulu",
        "beta",
    ]
    as_json = firm.run("status", "--all", "--attention", "--json", env=at_once)
    assert [b["business"] for b in json.loads(as_json.stdout)["businesses"]] == ["beta", "zulu"]


def test_attention_without_all_is_a_usage_error(firm: Firm) -> None:
    result = firm.run("--business", "alpha", "status", "--attention")
    assert result.code == 2
    assert result.stderr.strip() == (
        "fbstampli: error: --attention picks among the businesses: give it with --all"
    )


@pytest.mark.slow
def test_sync_all_under_q_says_a_business_line_only_once_its_transient_condition_lasted(
    firm: Firm,
) -> None:
    firm.first_tick()
    point_at(firm.homes["beta"], "http://127.0.0.1:9")  # nothing listens: exit 75
    no_retries = {"FBSTAMPLI_FRESHBOOKS_MAX_RETRIES": "0"}
    with lock_held(firm.homes["zulu"]):  # the previous run still going
        young = firm.run("-q", "sync", "--all", env=no_retries)
        assert (young.code, young.stderr) == (75, "")
        lasted = firm.run("-q", "sync", "--all", env={**no_retries, **AT_ONCE})
        assert lasted.code == 75
        lines = lasted.stderr.strip().splitlines()
        assert [line.split(":")[1].strip() for line in lines] == ["business beta", "business zulu"]
        assert "failing since" in lines[0]
        assert "another fbstampli run" in lines[1]
    log = (firm.homes["beta"] / "logs" / "fbstampli.log").read_text()
    assert "127.0.0.1:9" in log  # the young one was logged, not lost
    loud = firm.run("sync", "--all", env=no_retries)  # without -q every failing line is said
    assert "business beta: exit 75" in loud.stderr
