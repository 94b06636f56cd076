"""The daily digest: built from a real sync's state, sent to a real SMTP relay (aiosmtpd on
127.0.0.1, STARTTLS or TLS, with a login), and rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from fbstampli.digest import title_of
from fbstampli.options import Options
from fbstampli.sandbox.stampli import StampliSimulator
from fbstampli.services import sync
from fbstampli.sync.matching import Outcome
from tests.e2e.conftest import Connected
from tests.support.cli import one_line
from tests.support.smtp import PASSWORD, USERNAME, Relay, smtp_relay

# In a process of its own: a refused TLS handshake leaves the command's log file to be
# closed at process exit, which in the test process is an unclosed-file warning (an error).
pytestmark = pytest.mark.cli_process

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Day:
    """What the test did in Stampli, to compare the digest's funnel with."""

    in_freshbooks: int
    sent: int
    captured: int
    approved: int
    paid: int


def a_day_of_work(connected: Connected) -> Day:
    """Push every bill; Stampli captures all but two, approves three and rejects one of those
    captured, pays two of the approved; fbstampli pulls and reconciles (in this process: the
    digest is what runs through the command line here)."""
    pushed = sync.push_bills(options_of(connected), dry_run=False, full=False, since=None)
    assert not pushed.problems
    stampli = StampliSimulator(connected.sftp.root)
    bills = sorted(stampli.inbound_bills().values(), key=lambda bill: bill.fb_id)
    captured = bills[:-2]
    stampli.export_captures(captured)
    now = datetime.now(UTC)
    decisions = [(bill, "approved", now) for bill in captured[:3]]
    stampli.export_approvals([*decisions, (captured[3], "rejected", now)])
    stampli.export_payments([(bill, bill.total, bill.currency) for bill in captured[:2]])
    pull_and_reconcile(connected)
    live = [b for b in connected.freshbooks.data.bills.values() if b["vis_state"] != 1]
    return Day(len(live), len(bills), len(captured), 3, 2)


def options_of(connected: Connected) -> Options:
    return Options(home=connected.home, env={})


def pull_and_reconcile(connected: Connected) -> None:
    assert not sync.pull_stampli(options_of(connected), now=True).problems
    assert not sync.reconcile(options_of(connected), lambda report, rows: None).problems


def reconciled(connected: Connected) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    sync.reconcile(options_of(connected), lambda report, items: rows.extend(map(dict, items)))
    return rows


def store_relay(connected: Connected, relay: Relay, *extra: str) -> None:
    result = connected.run(
        "auth", "smtp", "--host", relay.host, "--port", str(relay.port),
        "--username", USERNAME, "--password-stdin", "--ca-file", str(relay.ca_file), *extra,
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert PASSWORD not in result.output


def configure(connected: Connected, **digest: str) -> None:
    settings = {
        "to": "ap-lead@example.com, controller@example.com",
        "sender": "fbstampli@example.com",
    }
    settings.update(digest)
    lines = "".join(f"{key} = {value}\n" if value in ("true", "false") else f'{key} = "{value}"\n'
                    for key, value in settings.items())  # fmt: skip
    config = connected.home / "config.toml"
    config.write_text(config.read_text() + "\n[digest]\n" + lines)


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None
    assert page is not None
    return str(text.get_content()), str(page.get_content())


def funnel_of_text(text: str) -> dict[str, int]:
    labels = {
        "In FreshBooks": "in_freshbooks",
        "Sent to Stampli": "sent",
        "Captured in Stampli": "captured",
        "Approved in Stampli": "approved",
        "Paid in Stampli": "paid",
    }
    found = {}
    for label, key in labels.items():
        match = re.search(rf"^\s*{label}\s+([\d,]+)\s*$", text, re.MULTILINE)
        assert match, f"{label} missing from:\n{text}"
        found[key] = int(match.group(1).replace(",", ""))
    return found


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    folder = tmp_path / "relay"
    folder.mkdir()
    with smtp_relay(folder) as server:
        yield server


def test_digest_arrives_over_starttls_with_both_parts_and_the_day_s_funnel(
    connected: Connected, relay: Relay
) -> None:
    day = a_day_of_work(connected)
    store_relay(connected, relay)
    configure(connected)
    result = connected.run("digest", "--send")
    assert result.code == 0, result.stderr
    assert len(relay.received) == 1
    assert sorted(relay.recipients[0]) == ["ap-lead@example.com", "controller@example.com"]
    text, page = parts(relay.received[0])
    assert funnel_of_text(text) == vars(day)
    for key, count in vars(day).items():
        assert re.search(rf'id="funnel-{key}".*?<strong>{count:,}</strong>', page), key
    attention = Counter(
        row["outcome"] for row in reconciled(connected) if Outcome(row["outcome"]).needs_attention
    )
    assert attention  # the day left something to look at
    for outcome, count in attention.items():
        assert f"  {title_of(outcome)}: {count} bill" in text
    for secret in [PASSWORD, *connected.secrets()]:
        assert secret not in result.output
        assert secret not in relay.received[0].as_string()


def test_digest_goes_over_implicit_tls(connected: Connected, tmp_path: Path) -> None:
    a_day_of_work(connected)
    configure(connected)
    with smtp_relay(tmp_path, implicit_tls=True) as relay:
        store_relay(connected, relay, "--security", "tls")
        result = connected.run("digest", "--send")
    assert result.code == 0, result.stderr
    assert len(relay.received) == 1
    parts(relay.received[0])


def test_a_refused_smtp_login_is_exit_3_in_one_line(connected: Connected, relay: Relay) -> None:
    configure(connected)
    stored = connected.run(
        "auth", "smtp", "--host", relay.host, "--port", str(relay.port), "--username", USERNAME,
        "--password-stdin", "--ca-file", str(relay.ca_file), stdin="wrong-password\n",
    )  # fmt: skip
    assert stored.code == 0, stored.stderr
    result = connected.run("digest", "--send")
    assert result.code == 3, result.stderr
    assert one_line(result.stderr)
    assert "refused the login of ap-robot" in result.stderr
    assert "wrong-password" not in result.output
    assert relay.received == []


def test_a_relay_whose_certificate_is_not_trusted_is_refused_in_one_line(
    connected: Connected, relay: Relay
) -> None:
    configure(connected)
    stored = connected.run(
        "auth", "smtp", "--host", relay.host, "--port", str(relay.port), "--username", USERNAME,
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert stored.code == 0, stored.stderr
    result = connected.run("digest", "--send")
    assert result.code == 2, result.stderr
    assert one_line(result.stderr)
    assert "--ca-file" in result.stderr
    assert relay.received == []


def test_a_relay_that_is_down_is_exit_75_and_says_the_next_run_tries_again(
    connected: Connected, relay: Relay
) -> None:
    store_relay(connected, relay)
    configure(connected)
    with smtp_relay(connected.home.parent) as other:
        port = other.port  # a port nobody listens on once this relay stops
    stored = connected.run(
        "auth", "smtp", "--host", "127.0.0.1", "--port", str(port), "--username", USERNAME,
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert stored.code == 0
    result = connected.run("digest", "--send")
    assert result.code == 75, result.stderr
    assert one_line(result.stderr)
    assert "next run tries again" in result.stderr


def test_plain_smtp_is_refused_to_a_relay_on_another_machine(connected: Connected) -> None:
    result = connected.run(
        "auth", "smtp", "--host", "smtp.example.com", "--security", "none", "--username", "u",
        "--password-stdin", stdin="p\n",
    )  # fmt: skip
    assert result.code == 2
    assert one_line(result.stderr)
    assert "in clear" in result.stderr


def test_sending_without_a_relay_or_recipients_says_what_to_set(connected: Connected) -> None:
    no_recipients = connected.run("digest", "--send")
    assert no_recipients.code == 2
    assert one_line(no_recipients.stderr)
    assert "digest.to" in no_recipients.stderr
    configure(connected)
    no_relay = connected.run("digest", "--send")
    assert no_relay.code == 2
    assert "fbstampli auth smtp" in no_relay.stderr


@pytest.mark.slow
def test_sync_sends_the_daily_digest_once_a_day_and_the_next_says_what_changed(
    connected: Connected, relay: Relay
) -> None:
    store_relay(connected, relay)
    configure(connected, enabled="true", send_at="00:00")
    first = connected.run("sync")
    assert first.code == 0, first.stderr
    assert len(relay.received) == 1
    assert connected.run("sync").code == 0
    assert len(relay.received) == 1  # already sent today
    text, _ = parts(relay.received[0])
    assert "This is the first digest" in text
    stampli = StampliSimulator(connected.sftp.root)
    bills = sorted(stampli.inbound_bills().values(), key=lambda bill: bill.fb_id)
    stampli.export_captures(bills[:4])
    pull_and_reconcile(connected)
    by_hand = connected.run("digest", "--send")
    assert by_hand.code == 0, by_hand.stderr
    second, _ = parts(relay.received[1])
    assert "Captured in Stampli +4" in second
    audit = connected.run("audit", "--format", "json")
    assert [row["action"] for row in json.loads(audit.stdout)].count("digest_sent") == 2


def test_a_disabled_digest_is_not_sent_by_sync(connected: Connected, relay: Relay) -> None:
    store_relay(connected, relay)
    configure(connected, enabled="false", send_at="00:00")
    assert connected.run("sync").code == 0
    assert relay.received == []


def test_the_output_file_is_checked_before_any_work(connected: Connected, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.html"
    link = tmp_path / "digest.html"
    link.symlink_to(target)
    result = connected.run("digest", "--output", str(link))
    assert result.code == 2
    assert one_line(result.stderr)
    assert not target.exists()


class _Visible(HTMLParser):
    """The text a reader sees, and the elements the page holds."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def chromium_dom(page: Path, profile: Path) -> str:
    assert shutil.which(CHROMIUM), "Chromium is missing: run tests/setup.sh"
    completed = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return completed.stdout


def test_chromium_renders_the_digest_with_the_funnel_and_a_hostile_vendor_as_text(
    connected: Connected, tmp_path: Path
) -> None:
    bill_id = min(i for i, b in connected.freshbooks.data.bills.items() if b["vis_state"] == 0)
    vendor_id = int(connected.freshbooks.data.bills[bill_id]["vendorid"])
    connected.freshbooks.update_vendor(vendor_id, vendor_name=HOSTILE)
    day = a_day_of_work(connected)
    stampli = StampliSimulator(connected.sftp.root)
    bill = stampli.inbound_bills()[bill_id]
    stampli.export_payments([(bill, bill.total + Decimal("1.00"), bill.currency)])
    pull_and_reconcile(connected)
    page = tmp_path / "digest.html"
    result = connected.run("digest", "--output", str(page))
    assert result.code == 0, result.stderr
    assert "<script" not in page.read_text()
    dom = chromium_dom(page, tmp_path / "chromium-profile")
    seen = _Visible()
    seen.feed(dom)
    text = " ".join(" ".join(seen.text).split())
    assert "script" not in seen.tags
    assert "img" not in seen.tags
    assert HOSTILE in " ".join(seen.text)  # shown as the vendor's name, not obeyed
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    stages = (
        ("In FreshBooks", day.in_freshbooks),
        ("Sent to Stampli", day.sent),
        ("Captured in Stampli", day.captured),
        ("Approved in Stampli", day.approved),
        ("Paid in Stampli", day.paid),  # the second payment was to a bill already paid
    )
    for label, count in stages:
        assert f"{label} {count:,}" in text, (label, text[:400])
    assert "Paid amounts differ" in text


@pytest.mark.slow
def test_digest_all_sends_one_per_business_and_a_business_without_relay_fails_alone(
    tmp_path: Path, relay: Relay
) -> None:
    from fbstampli.services.digest import auth_smtp
    from tests.e2e.test_businesses import two_businesses

    with two_businesses(tmp_path) as installation:
        for site in (installation.alpha, installation.beta):
            options = Options(home=site.home, env={})
            assert not sync.push_bills(options, dry_run=False, full=False, since=None).problems
            config = site.home / "config.toml"
            config.write_text(
                config.read_text()
                + f'\n[digest]\nto = "{site.name}-ap@example.com"\nsender = "f@example.com"\n'
            )
        auth_smtp(
            Options(home=installation.alpha.home, env={}),
            host=relay.host,
            port=relay.port,
            security="starttls",
            username=USERNAME,
            password=PASSWORD,
            ca_file=relay.ca_file,
        )
        result = installation.run("digest", "--send", "--all")
    assert result.code == 2, result.stderr
    assert relay.recipients == [["alpha-ap@example.com"]]
    text, _ = parts(relay.received[0])
    sent = len(installation.alpha.sent_bill_ids())
    assert funnel_of_text(text)["sent"] == sent
    assert "business beta: exit 2" in result.stderr
    assert "fbstampli auth smtp" in result.stderr
