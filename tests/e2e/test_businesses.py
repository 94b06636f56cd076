"""Several businesses, one installation: each keeps its own state, target and trouble.

Two FreshBooks businesses on one sandbox login, two Stampli SFTP servers, one
installation folder: `business add`, `sync --all` and `status --all` through
the real command line, and one failing business never holding up the other.
"""

import csv
import io
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign
from fbstampli.options import Options
from fbstampli.sandbox.fb_data import Business
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.sandbox import connect_home
from tests.e2e.conftest import Connected
from tests.support.cli import Result, cli_env, run, start
from tests.support.local_http import free_port, request_json, wait_for

# In a new process: a stopped server's socket is left to process exit.
pytestmark = pytest.mark.cli_process

ALPHA = Business("ALPHA1", 111000, "Alpha Holdings Ltd.")
BETA = Business("BETA22", 222000, "Beta Trading Inc.")


@dataclass
class Site:
    """One business of the installation: its FreshBooks account and its Stampli target."""

    name: str
    business: Business
    home: Path
    sftp: SftpServer

    @property
    def inbound(self) -> Path:
        return self.sftp.root / "inbound"

    def sent_bill_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self.inbound.glob("*-bills.csv"):
            rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
            ids |= {row["FreshBooks Bill ID"] for row in rows}
        return ids

    def sent_bill_numbers(self) -> set[str]:
        numbers: set[str] = set()
        for path in self.inbound.glob("*-bills.csv"):
            rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
            numbers |= {row["Invoice Number"] for row in rows if row.get("Invoice Number")}
        return numbers


@dataclass
class Installation:
    folder: Path
    freshbooks: FreshBooksSandbox
    alpha: Site
    beta: Site

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run(self.folder, *args, env=env)

    def account(self, site: Site) -> object:
        return self.freshbooks.accounts[site.business.account_id]


def _server(root: Path) -> SftpServer:
    for folder in ("inbound", "outbound"):
        (root / folder).mkdir(parents=True)
    return SftpServer(root)


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    with two_businesses(tmp_path) as made:
        yield made


@contextmanager
def two_businesses(tmp_path: Path, *, emit_events: bool = False) -> Iterator[Installation]:
    """Two businesses added through the CLI, then logged in (one login, two businesses)."""
    folder = tmp_path / "fbstampli"
    with (
        FreshBooksSandbox(businesses=[ALPHA, BETA], emit_events=emit_events) as freshbooks,
        _server(tmp_path / "stampli-alpha") as alpha_sftp,
        _server(tmp_path / "stampli-beta") as beta_sftp,
    ):
        freshbooks.accounts[ALPHA.account_id].seed(vendors=3, bills=6, payments=0, seed=1)
        freshbooks.accounts[BETA.account_id].seed(vendors=4, bills=9, payments=0, seed=2)
        sites = []
        for name, business, sftp in (("alpha", ALPHA, alpha_sftp), ("beta", BETA, beta_sftp)):
            added = run(folder, "business", "add", name, "--key-source", "file")
            assert added.code == 0, added.stderr
            home = folder / "businesses" / name
            connect_home(
                Options(home=home, env={}),
                freshbooks,
                sftp,
                business=name,
                business_id=business.business_id,
            )
            sites.append(Site(name, business, home, sftp))
        yield Installation(folder, freshbooks, *sites)


def bill_numbers(freshbooks: FreshBooksSandbox, business: Business) -> set[str]:
    bills = freshbooks.accounts[business.account_id].bills.values()
    return {str(bill["bill_number"]) for bill in bills if bill.get("bill_number")}


def test_business_add_makes_a_home_per_business_and_list_shows_them(
    installation: Installation,
) -> None:
    listed = installation.run("business", "list", "--json")
    assert listed.code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["state"], r["adopted"]) for r in rows] == [
        ("alpha", "ok", False),
        ("beta", "ok", False),
    ]
    for site in (installation.alpha, installation.beta):
        assert (site.home / "state.db").is_file()
        assert (site.home / "state.key").is_file()  # each its own key
    assert (installation.alpha.home / "state.key").read_bytes() != (
        installation.beta.home / "state.key"
    ).read_bytes()
    text = (installation.folder / "installation.toml").read_text()
    assert 'home = "businesses/alpha"' in text
    assert "key" not in text.replace("# ", "").split("\n", 3)[-1]  # nothing secret in it
    removed = installation.run("business", "remove", "beta")
    assert removed.code == 0, removed.stderr
    assert [
        r["name"] for r in json.loads(installation.run("business", "list", "--json").stdout)
    ] == ["alpha"]
    assert (installation.beta.home / "state.db").is_file()  # forgotten, not deleted


def test_business_add_refuses_a_taken_or_unusable_name(installation: Installation) -> None:
    again = installation.run("business", "add", "alpha")
    assert again.code == 2
    assert "exists already" in again.stderr
    bad = installation.run("business", "add", "../evil")
    assert bad.code == 2
    assert "lower-case letters" in bad.stderr
    assert not (installation.folder / "evil").exists()


def test_next_steps_name_the_exact_commands(tmp_path: Path) -> None:
    added = run(tmp_path / "inst", "business", "add", "gamma", "--key-source", "file")
    assert added.code == 0, added.stderr
    assert "fbstampli --business gamma auth login" in added.stdout
    assert "fbstampli --business gamma auth sftp" in added.stdout
    assert "/webhooks/freshbooks/gamma" in added.stdout


def test_an_existing_home_is_adopted_by_its_absolute_path_without_change(
    installation: Installation, tmp_path: Path
) -> None:
    old = tmp_path / "old-home"
    assert run(old, "init", "--key-source", "file").code == 0
    before = sorted(p.name for p in old.iterdir())
    adopted = installation.run("business", "add", "legacy", "--adopt", str(old))
    assert adopted.code == 0, adopted.stderr
    assert f'home = "{old}"' in (installation.folder / "installation.toml").read_text()
    assert sorted(p.name for p in old.iterdir()) == before
    status = installation.run("--business", "legacy", "status", "--json")
    assert status.code == 1, status.stderr  # opened; 1: it needs a login (attention)
    assert json.loads(status.stdout)["home"] == str(old)
    missing = installation.run("business", "add", "ghost", "--adopt", str(tmp_path / "none"))
    assert missing.code == 2
    assert "nothing to adopt" in missing.stderr
    assert "init`" in missing.stderr


def test_a_single_home_keeps_working_and_can_be_adopted_as_it_is(connected: Connected) -> None:
    """An existing home is its own installation: adopt it, and plain commands still mean it."""
    assert connected.run("sync").code == 0
    nothing_listed = connected.run("sync", "--all")
    assert nothing_listed.code == 2
    assert f"--adopt {connected.home}" in nothing_listed.stderr
    adopted = connected.run("business", "add", "main", "--adopt", str(connected.home))
    assert adopted.code == 0, adopted.stderr
    connected.freshbooks.update_bill(
        next(iter(sorted(connected.freshbooks.data.bills))), bill_number="CHANGED"
    )
    every = connected.run("sync", "--all")
    assert every.code == 0, every.stderr
    assert any("CHANGED" in (connected.inbound / n).read_text() for n in connected.inbound_files())
    assert connected.run("sync").code == 0  # the plain command: the same home, as before
    log = (connected.home / "logs" / "fbstampli.log").read_text()
    assert log.count("sync (--all, business main): exit 0") == 1  # one log, not written twice
    status = connected.run("--business", "main", "status", "--json")
    assert json.loads(status.stdout)["home"] == str(connected.home)


def test_next_steps_name_the_installation_when_it_is_not_found_by_default(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "elsewhere"
    added = run(
        tmp_path / "home",
        "--installation",
        str(folder),
        "business",
        "add",
        "delta",
        "--key-source",
        "file",
    )
    assert added.code == 0, added.stderr
    assert f"fbstampli --installation {folder} --business delta auth login" in added.stdout
    login = run(
        tmp_path / "home", "--installation", str(folder), "--business", "delta", "auth", "status"
    )
    assert login.code == 1, login.stderr  # found, and not logged in yet: the hint finds it too
    assert f"`fbstampli --installation {folder} --business delta auth login`" in login.stderr


def test_sync_all_sends_each_business_to_its_own_stampli_only(installation: Installation) -> None:
    result = installation.run("sync", "--all")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    fb = installation.freshbooks
    alpha, beta = installation.alpha, installation.beta
    assert alpha.sent_bill_numbers() == bill_numbers(fb, ALPHA)
    assert beta.sent_bill_numbers() == bill_numbers(fb, BETA)
    assert not alpha.sent_bill_numbers() & beta.sent_bill_numbers()
    for site in (alpha, beta):
        log = (site.home / "logs" / "fbstampli.log").read_text()
        assert f"business {site.name}" in log
    assert "business beta" not in (alpha.home / "logs" / "fbstampli.log").read_text()


def _refresh_token(home: Path) -> str:
    from fbstampli.clock import SystemClock
    from fbstampli.store import open_state
    from fbstampli.store.credentials import StateTokenStore

    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        token = StateTokenStore(store).load()
    finally:
        store.close()
    assert token is not None
    return token.refresh_token


def test_a_revoked_login_fails_only_its_business(installation: Installation) -> None:
    fb = installation.freshbooks
    fb.auth.revoke(_refresh_token(installation.alpha.home))
    fb.expire_access_tokens()
    new_bill = _new_bill(fb, BETA)
    result = installation.run("sync", "--all")
    assert result.code == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fbstampli: business alpha: exit 3: ")
    assert installation.alpha.sent_bill_ids() == set()
    assert str(new_bill) in installation.beta.sent_bill_ids()


def _new_bill(fb: FreshBooksSandbox, business: Business) -> int:
    account = fb.accounts[business.account_id]
    vendor = next(iter(sorted(account.vendors)))
    return account.create_bill(vendor, bill_number=f"NEW-{business.account_id}")


# Under -q an outage is said at once, not after quiet_transient_hours (tests/e2e/test_firm.py).
SAY_OUTAGES = {"FBSTAMPLI_MONITORING_QUIET_TRANSIENT_HOURS": "0"}


def test_a_stopped_sftp_server_fails_only_its_business(installation: Installation) -> None:
    assert installation.run("sync", "--all").code == 0
    installation.beta.sftp.stop()
    new_bill = _new_bill(installation.freshbooks, ALPHA)
    _new_bill(installation.freshbooks, BETA)  # something to send where no server answers
    result = installation.run("-q", "sync", "--all", env=SAY_OUTAGES)
    assert result.code == 75, result.stderr  # SFTP unreachable: try later; beta's files wait
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fbstampli: business beta: exit 75: upload of "), result.stderr
    assert str(new_bill) in installation.alpha.sent_bill_ids()


def test_an_unusable_state_fails_only_its_business(installation: Installation) -> None:
    (installation.beta.home / "state.key").write_text("0" * 64)  # beta's key is lost
    new_bill = _new_bill(installation.freshbooks, ALPHA)
    result = installation.run("-q", "sync", "--all")
    assert result.code == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fbstampli: business beta: exit 4: ")
    assert str(new_bill) in installation.alpha.sent_bill_ids()


def test_sync_all_exits_with_the_worst_code_and_a_line_per_failing_business(
    installation: Installation,
) -> None:
    fb = installation.freshbooks
    fb.auth.revoke(_refresh_token(installation.alpha.home))
    fb.expire_access_tokens()
    installation.beta.sftp.stop()  # its first sync finds no server for the pull: exit 75
    result = installation.run("-q", "sync", "--all", env=SAY_OUTAGES)
    assert result.code == 3, result.stderr  # a login to renew outranks a server to wait for
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fbstampli: business alpha: exit 3: ")
    assert lines[1].startswith(
        "fbstampli: business beta: exit 75: upload of "
    )  # the stages go on: the first problem is the upload
    assert result.stdout == ""
    as_json = installation.run("sync", "--all", "--json")
    document = json.loads(as_json.stdout)
    assert [b["exit_code"] for b in document["businesses"]] == [3, 75]
    assert document["exit_code"] == 3


def test_status_all_gives_a_line_per_business_and_fails_when_one_needs_attention(
    installation: Installation,
) -> None:
    assert installation.run("sync", "--all").code == 0
    status = installation.run("status", "--all")
    assert status.code == 0, status.stdout + status.stderr
    lines = status.stdout.strip().splitlines()
    assert lines[0].split("\t") == [
        "business",
        "bills in Stampli",
        "failing",
        "last run",
        "needs attention",
    ]
    alpha_row, beta_row = (line.split("\t") for line in lines[1:])
    assert alpha_row[:3] == ["alpha", str(len(bill_numbers(installation.freshbooks, ALPHA))), "0"]
    assert beta_row[:3] == ["beta", str(len(bill_numbers(installation.freshbooks, BETA))), "0"]
    assert alpha_row[4] == beta_row[4] == "no"

    (installation.beta.home / "state.key").write_text("0" * 64)  # beta's key is lost
    broken = installation.run("status", "--all", "--json")
    assert broken.code == 1
    document = json.loads(broken.stdout)
    alpha, beta = document["businesses"]
    assert alpha["needs_attention"] == []
    assert alpha["status"]["freshbooks"]["account_id"] == ALPHA.account_id
    assert beta["status"] is None
    assert beta["needs_attention"][0].startswith("cannot read its state")


def test_status_and_status_all_judge_a_business_by_the_same_rule(
    installation: Installation,
) -> None:
    """A sync that could not reach the server (exit 75) once passed `status --all` and failed
    `status`; both now read one rule (`fbstampli/attention.py`)."""
    installation.beta.sftp.stop()  # its sync finds no server: exit 75, retries by itself
    assert installation.run("sync", "--all").code == 75
    at_once = {"FBSTAMPLI_MONITORING_FAILING_ATTENTION_HOURS": "0"}  # not after 2 h of it
    one = installation.run("--business", "beta", "status", "--json", env=at_once)
    every = installation.run("status", "--all", "--json", env=at_once)
    attention = json.loads(one.stdout)["attention"]
    assert attention  # the failed run is named
    beta = json.loads(every.stdout)["businesses"][1]
    assert beta["needs_attention"] == attention
    assert one.code == every.code == 1


# -- one listener for every business --------------------------------------------------------------


@dataclass
class Listening:
    installation: Installation
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/freshbooks/{name}"

    def post(self, name: str, pairs: tuple[tuple[str, str], ...], signature: str) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: signature}
        body = urlencode(pairs).encode()
        return request_json(self.port, "POST", f"/webhooks/freshbooks/{name}", body, headers)[0]


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Listening]:
    """`serve-webhook --all` on one port, each business's callbacks registered at its URL."""
    with two_businesses(tmp_path, emit_events=True) as made:
        assert made.run("sync", "--all").code == 0  # the first full sync, then the fast path
        port = free_port()
        log = tmp_path / "serve-webhook.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "fbstampli", "serve-webhook", "--all", "--port", str(port)],
                env=cli_env(made.folder),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:

            def answering() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return request_json(port, "GET", "/healthz")[0] == 200
                except OSError:
                    return False

            wait_for(answering)
            serving = Listening(made, port, process, log)
            for name in ("alpha", "beta"):
                registered = made.run(
                    "--business", name, "webhooks", "register", "--url", serving.url(name)
                )
                assert registered.code == 0, registered.stderr
            yield serving
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        assert code == 0, log.read_text()  # SIGTERM: stop accepting, finish, exit 0


def queue_of(home: Path) -> tuple[int, str | None]:
    from fbstampli.clock import SystemClock
    from fbstampli.store import open_state
    from fbstampli.store.events import queue_state

    store, _ = open_state(home / "state.db", {}, SystemClock(), recover=False)
    try:
        state = queue_state(store)
    finally:
        store.close()
    return state.queued, state.last_event_at


def test_one_listener_sends_each_business_events_to_its_own_stampli(
    listening: Listening,
) -> None:
    made = listening.installation
    alpha_bill = _new_bill(made.freshbooks, ALPHA)  # the sandbox announces it by webhook
    beta_bill = _new_bill(made.freshbooks, BETA)
    wait_for(lambda: str(alpha_bill) in made.alpha.sent_bill_ids())
    wait_for(lambda: str(beta_bill) in made.beta.sent_bill_ids())
    assert f"NEW-{ALPHA.account_id}" in made.alpha.sent_bill_numbers()
    assert f"NEW-{BETA.account_id}" not in made.alpha.sent_bill_numbers()
    assert f"NEW-{ALPHA.account_id}" not in made.beta.sent_bill_numbers()
    health = request_json(listening.port, "GET", "/healthz")[1]
    businesses = health["businesses"]
    assert isinstance(businesses, dict)
    assert businesses["alpha"]["accepted"] >= 1
    assert businesses["beta"]["accepted"] >= 1


def test_one_business_without_its_sftp_server_does_not_hold_up_the_others_events(
    listening: Listening,
) -> None:
    made = listening.installation
    made.beta.sftp.stop()
    beta_bill = _new_bill(made.freshbooks, BETA)
    alpha_bill = _new_bill(made.freshbooks, ALPHA)
    wait_for(lambda: str(alpha_bill) in made.alpha.sent_bill_ids())
    assert str(beta_bill) not in made.beta.sent_bill_ids()
    wait_for(lambda: queue_of(made.beta.home)[1] is not None)  # kept in beta's queue meanwhile


def test_an_event_signed_for_one_business_but_naming_another_is_refused(
    listening: Listening,
) -> None:
    made = listening.installation
    alpha_verifier = next(iter(made.freshbooks.callbacks[ALPHA.account_id].values())).verifier
    before = {site.name: queue_of(site.home) for site in (made.alpha, made.beta)}
    forged = (
        ("name", "bill.update"),
        ("object_id", "1"),
        ("account_id", BETA.account_id),
        ("business_id", str(BETA.business_id)),
        ("identity_id", "1"),
        ("user_id", "1"),
    )
    signature = sign(forged, alpha_verifier)
    assert listening.post("alpha", forged, signature) == 403  # alpha's key, beta's account
    assert listening.post("beta", forged, signature) == 401  # not signed by beta's verifiers
    other_business = (*forged[:2], ("account_id", ALPHA.account_id), ("business_id", "999"))
    assert listening.post("alpha", other_business, sign(other_business, alpha_verifier)) == 403
    assert listening.post("gamma", forged, signature) == 404
    after = {site.name: queue_of(site.home) for site in (made.alpha, made.beta)}
    assert after == before  # nothing queued anywhere
    genuine = (*forged[:2], ("account_id", ALPHA.account_id), ("business_id", "111000"))
    assert listening.post("alpha", genuine, sign(genuine, alpha_verifier)) == 200
    wait_for(lambda: queue_of(made.alpha.home)[1] != before["alpha"][1])


def test_demo_with_two_businesses_syncs_each_to_its_own_stampli_through_one_listener(
    tmp_path: Path,
) -> None:
    result = run(
        tmp_path / "unused",
        "demo",
        "--businesses",
        "2",
        "--bills",
        "4",
        env={"TMPDIR": str(tmp_path)},
    )
    assert result.code == 0, result.stdout + result.stderr
    assert "fbstampli sync --all: exit 0" in result.stdout
    assert "serve-webhook --all: one port" in result.stdout
    rows = [line.split("\t") for line in result.stdout.splitlines() if "WEBHOOK-" in line]
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("alpha", "WEBHOOK-ALPHA", "no"),
        ("beta", "WEBHOOK-BETA", "no"),
    ]
    assert all(row[2].endswith(" s") for row in rows)
    assert [path.name for path in tmp_path.iterdir() if path.name != "unused"] == []


# -- crash trial: sync --all killed anywhere, then run again --------------------------------------

FILE_KINDS = {
    "-vendors.csv": ("vendor", "FreshBooks Vendor ID"),
    "-bills.csv": ("bill", "FreshBooks Bill ID"),
    "-payments.csv": ("payment", "FreshBooks Payment ID"),
}


def delivered_to(site: Site) -> Counter[tuple[str, str]]:
    """(kind, id) -> how many files in this business's inbound carried it."""
    seen: Counter[tuple[str, str]] = Counter()
    for path in site.inbound.iterdir():
        for suffix, (kind, column) in FILE_KINDS.items():
            if path.name.endswith(suffix):
                rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
                for fb_id in {row[column] for row in rows}:
                    seen[(kind, fb_id)] += 1
    return seen


def expected_of(freshbooks: FreshBooksSandbox, business: Business) -> set[tuple[str, str]]:
    data = freshbooks.accounts[business.account_id]

    def live(records: dict[int, dict[str, object]]) -> set[str]:
        return {str(i) for i, record in records.items() if record.get("vis_state", 0) != 1}

    return (
        {("vendor", i) for i in live(data.vendors)}
        | {("bill", i) for i in live(data.bills)}
        | {("payment", i) for i in live(data.payments)}
    )


def _sftp_hold(site: str, pattern: str) -> Callable[[Installation], tuple[Any, Callable]]:
    def make(made: Installation) -> tuple[Any, Callable]:
        return getattr(made, site).sftp.hold(pattern), lambda held: held.reached

    return make


def _listing_hold(business: Business) -> Callable[[Installation], tuple[Any, Callable]]:
    def make(made: Installation) -> tuple[Any, Callable]:
        hold = made.freshbooks.hold(
            f"/accounting/account/{business.account_id}/bills", method="GET"
        )

        @contextmanager
        def holding() -> Iterator[Any]:
            try:
                yield hold
            finally:
                hold.release()

        return holding(), lambda held: held.arrived

    return make


SYNC_ALL_KILL_POINTS = {
    "alpha mid-upload of its bills": _sftp_hold("alpha", "*-bills.csv.part"),
    "alpha after its bills rename, before the commit": _sftp_hold("alpha", "renamed:*-bills.csv"),
    "beta while listing its bills (alpha done)": _listing_hold(BETA),
    "beta mid-upload of its vendors": _sftp_hold("beta", "*-vendors.csv.part"),
    "beta after its bills rename, before the commit": _sftp_hold("beta", "renamed:*-bills.csv"),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(SYNC_ALL_KILL_POINTS))
def test_a_killed_sync_all_loses_and_duplicates_nothing_in_any_business(
    installation: Installation, point: str
) -> None:
    made = installation
    _new_bill(made.freshbooks, ALPHA)
    _new_bill(made.freshbooks, BETA)
    hold, reached = SYNC_ALL_KILL_POINTS[point](made)
    with hold as held:
        process = start(made.folder, "sync", "--all")
        try:
            assert reached(held).wait(30), "sync --all never reached the kill point"
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == -signal.SIGKILL
    again = made.run("sync", "--all")
    assert again.code == 0, again.stderr
    for site in (made.alpha, made.beta):
        seen = delivered_to(site)
        assert set(seen) == expected_of(made.freshbooks, site.business), site.name
        assert [key for key, count in seen.items() if count != 1] == [], site.name
        assert not [p.name for p in site.inbound.iterdir() if p.name.endswith(".part")]
