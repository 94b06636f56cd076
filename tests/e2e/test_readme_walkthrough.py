"""The README's ten-minute set-up, run as written against the two sandboxes, so it cannot rot.

Under the heading, a block marked `<!-- walkthrough: sandbox -->` is a
long-running command in a terminal of its own: each is started as its own
process. Blocks marked `<!-- walkthrough: run -->` are typed, in order, into one
bash on a pseudo-terminal (the user's first terminal), with `set -e`. The test
plays the user at the prompts: it follows the login address as a browser would
and pastes where it landed, types the password the SFTP sandbox printed, and
accepts the host key only if it is the fingerprint that sandbox printed.

The only edits to the commands: the sandboxes listen on free ports
(`--port 0`), and the run blocks' default ports become those. Unmarked blocks
(installing, `crontab -e`) are not run; `fbstampli` on PATH is this checkout.
"""

import csv
import http.client
import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fbstampli.sync.marker import is_marker_name
from tests.support.cli import REPO, cli_env, read_lines_until
from tests.support.local_http import free_port, wait_for

HEADING = "## Setting it up in ten minutes"
BY_HAND = "## Watching a change arrive, by hand"
BLOCK = re.compile(r"<!-- walkthrough: (sandbox|run|listen) -->\n```sh\n(.*?)```", re.DOTALL)
LISTENER_DEFAULT = "127.0.0.1:8787"  # `fbstampli serve-webhook`'s default address
FRESHBOOKS_DEFAULT = "127.0.0.1:8765"  # `fbstampli sandbox freshbooks`'s default address
SFTP_DEFAULT = "--port 2222"  # `fbstampli sandbox sftp`'s default port
WALKTHROUGH_TIMEOUT = 300.0
BANNER_TIMEOUT = 30.0
URL_PROMPT = "Redirected URL: "
PASSWORD_PROMPT = "SFTP password: "
PIN_PROMPT = "Pin it? [y/N]: "
BUSINESS_PROMPT = "Business id: "
SEVERAL = "## Several businesses"


def walkthrough_blocks(heading: str = HEADING) -> list[tuple[str, str]]:
    """(kind, text) of each marked block under `heading`, in order."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert heading in readme, f"README has no {heading!r} section"
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    return [(match[1], match[2]) for match in BLOCK.finditer(section)]


def exported(script: str, home: Path) -> dict[str, str]:
    """The `export NAME=VALUE` lines of a script, `~` expanded: what a new terminal is given."""
    found = re.findall(r"^export (\w+)=(\S+)$", script, re.MULTILINE)
    return {name: value.replace("~", str(home), 1) for name, value in found}


def cron_command() -> str:
    """The command of crontab.example's schedule line (`m h dom mon dow command`)."""
    for line in (REPO / "crontab.example").read_text().splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and not line.startswith("#") and "=" not in fields[0]:
            return fields[5]
    raise AssertionError("crontab.example has no schedule line")


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    banner: list[str]

    def value(self, label: str) -> str:
        line = next(line for line in self.banner if line.startswith(f"  {label}:"))
        return line.split(":", 1)[1].strip()


def start_sandbox(command: str, env: dict[str, str], cwd: Path) -> Sandbox:
    process = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-c", f"exec {command.strip()} --port 0"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    banner = read_lines_until(process, lambda line: "Ctrl-C stops" in line, BANNER_TIMEOUT)
    return Sandbox(process, banner)


def user_environment(tmp_path: Path) -> dict[str, str]:
    """A fresh user: empty home, `fbstampli` (this checkout) and a recording browser on PATH."""
    user_home = tmp_path / "user"
    bin_dir = tmp_path / "bin"
    for folder in (user_home, bin_dir):
        folder.mkdir()
    (bin_dir / "fbstampli").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fbstampli "$@"\n')
    # The "browser": notes the address it was asked to open; the test plays the user's clicks.
    (bin_dir / "xdg-open").write_text(f'#!/bin/sh\necho "$1" >> "{tmp_path}/browser.log"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    env = cli_env(user_home)
    for name in ("FBSTAMPLI_HOME", "XDG_CONFIG_HOME"):
        env.pop(name, None)
    env.update(
        HOME=str(user_home),
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        BROWSER=str(bin_dir / "xdg-open"),
        TERM="dumb",
    )
    return env


def follow_like_a_browser(url: str) -> str:
    """GET the authorize address and return where the server redirects, without going there."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        answer = connection.getresponse()
        assert answer.status in (302, 303), answer.status
        return str(answer.getheader("Location"))
    finally:
        connection.close()


@dataclass
class User:
    """Answers the prompts on the terminal as the README tells a person to."""

    password: str
    fingerprint: str
    transcript: str = ""
    answered: dict[str, int] = field(default_factory=dict)
    pasted_urls: list[str] = field(default_factory=list)
    chosen_businesses: list[str] = field(default_factory=list)

    def reply(self, seen: str) -> str | None:
        self.transcript += seen
        for prompt in (URL_PROMPT, PASSWORD_PROMPT, PIN_PROMPT, BUSINESS_PROMPT):
            if self.transcript.count(prompt) > self.answered.get(prompt, 0):
                self.answered[prompt] = self.answered.get(prompt, 0) + 1
                return self._answer(prompt)
        return None

    def _answer(self, prompt: str) -> str:
        before = self.transcript[: self.transcript.rindex(prompt)]
        if prompt == URL_PROMPT:
            url = re.findall(r"paste the address your browser lands on:\s+(\S+)", before)[-1]
            self.pasted_urls.append(url)
            return follow_like_a_browser(url) + "\n"
        if prompt == PASSWORD_PROMPT:
            return self.password + "\n"
        if prompt == BUSINESS_PROMPT:  # the first login takes the first business, and so on
            listed = re.findall(r"^  (\d+)  \S", before.rsplit(URL_PROMPT, 1)[-1], re.MULTILINE)
            self.chosen_businesses.append(listed[len(self.chosen_businesses)])
            return self.chosen_businesses[-1] + "\n"
        offered = before.rsplit("\n", 1)[-1]
        return "y\n" if self.fingerprint in offered else "n\n"


def type_into_a_terminal(script: Path, env: dict[str, str], cwd: Path, user: User) -> int:
    """Run `script` with bash on a pseudo-terminal (its controlling tty), answering prompts."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: become the user's shell
        os.chdir(cwd)
        shell = ["bash", "--noprofile", "--norc", "-e", "-x", str(script)]
        os.execve("/bin/bash", shell, env)  # noqa: S606 - bash is the point: the user's shell
    deadline = time.monotonic() + WALKTHROUGH_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # EIO: the shell exited and the terminal closed
                break
            if not chunk:
                break
            answer = user.reply(chunk.decode("utf-8", errors="replace"))
            if answer is not None:
                os.write(terminal, answer.encode())
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"the walk-through did not finish:\n{user.transcript}")
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_readme_walkthrough_runs_as_written_against_both_sandboxes(tmp_path: Path) -> None:
    blocks = walkthrough_blocks()
    sandbox_commands = [text for kind, text in blocks if kind == "sandbox"]
    script = "".join(text for kind, text in blocks if kind == "run")
    assert [command.split()[:3] for command in sandbox_commands] == [
        ["fbstampli", "sandbox", "freshbooks"],
        ["fbstampli", "sandbox", "sftp"],
    ]
    for step in ("init", "auth login", "auth sftp", "doctor", "push-bills --dry-run", "sync"):
        assert f"fbstampli {step}" in script, f"the walk-through lost `fbstampli {step}`"
    assert script.strip().splitlines()[-1] == cron_command(), "the last step is cron's command"

    env = user_environment(tmp_path)
    user_home = Path(env["HOME"])
    freshbooks = start_sandbox(sandbox_commands[0], env, user_home)
    sftp = start_sandbox(sandbox_commands[1], env, user_home)
    try:
        address = re.search(r"at http://(127\.0\.0\.1:\d+)", freshbooks.banner[0])
        assert address is not None, freshbooks.banner
        assert FRESHBOOKS_DEFAULT in script
        assert SFTP_DEFAULT in script
        script = script.replace(FRESHBOOKS_DEFAULT, address[1])
        script = script.replace(SFTP_DEFAULT, f"--port {sftp.value('port')}")
        (tmp_path / "walkthrough.sh").write_text(script)
        user = User(password=sftp.value("password"), fingerprint=sftp.value("host key").split()[1])

        code = type_into_a_terminal(tmp_path / "walkthrough.sh", env, user_home, user)

        assert code == 0, user.transcript
        inbound = sorted(
            path.name
            for path in (user_home / "stampli-sandbox" / "inbound").iterdir()
            if not is_marker_name(path.name)
        )
        by_hand = watch_changes_by_hand(tmp_path, {**env, **exported(script, user_home)})
    finally:
        stopped = []
        for sandbox in (freshbooks, sftp):
            sandbox.process.send_signal(signal.SIGINT)
            sandbox.process.communicate(timeout=BANNER_TIMEOUT)
            stopped.append(sandbox.process.returncode)

    transcript = user.transcript
    assert user.answered == {URL_PROMPT: 1, PASSWORD_PROMPT: 1, PIN_PROMPT: 1}, transcript
    assert (tmp_path / "browser.log").read_text().split() == user.pasted_urls
    assert user.password not in transcript  # the password prompt does not echo
    doctor = [line for line in transcript.splitlines() if re.match(r"(ok  |FAIL) \S", line)]
    assert len(doctor) == 14, transcript  # home, disk, key, state, backups, FreshBooks, SFTP…
    assert all(line.startswith("ok   ") for line in doctor), "\n".join(doctor)
    dry_run = sorted(path.name for path in (user_home / "fbstampli-sandbox" / "dry-run").iterdir())
    for files in (dry_run, inbound):
        assert [name.rsplit("_", 1)[1] for name in files] == [
            "0-categories.csv",
            "0-taxes.csv",
            "1-vendors.csv",
            "2-bills.csv",
            "3-payments.csv",
        ]
    # Cron's command came last (`bash -x` traced it) and printed nothing: no mail from cron.
    assert transcript.rstrip().endswith(f"+ {cron_command()}"), transcript[-2000:]
    assert stopped == [0, 0]

    check_changes_by_hand(by_hand, user_home / "stampli-sandbox" / "inbound")


@dataclass
class ByHand:
    transcript: str
    scripts: list[str]
    listener_code: int | None


def watch_changes_by_hand(tmp_path: Path, env: dict[str, str]) -> ByHand:
    """The README's "by hand" section, typed into the same kind of terminal, its listener
    started in a terminal of its own (on a free port) when the README says to start it."""
    user_home = Path(env["HOME"])
    watcher = User(password="", fingerprint="")  # no prompt is expected here
    scripts: list[str] = []
    listener: subprocess.Popen[str] | None = None
    port = free_port()
    try:
        for kind, text in walkthrough_blocks(BY_HAND):
            if kind == "run":  # each block its own script, typed into the one terminal
                assert LISTENER_DEFAULT not in text or listener is not None, text
                script = tmp_path / f"by-hand-{len(scripts)}.sh"
                script.write_text(text.replace(LISTENER_DEFAULT, f"127.0.0.1:{port}"))
                scripts.append(text)
                code = type_into_a_terminal(script, env, user_home, watcher)
                assert code == 0, watcher.transcript
            if kind == "listen":
                assert listener is None
                assert text.split()[:2] == ["fbstampli", "serve-webhook"]
                listener = subprocess.Popen(
                    ["bash", "--noprofile", "--norc", "-c", f"exec {text.strip()} --port {port}"],
                    env=env,
                    cwd=user_home,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                wait_for(lambda: _answers(port), timeout=BANNER_TIMEOUT)
            elif kind == "sandbox":
                raise AssertionError("the by-hand section uses the set-up's sandboxes")
    finally:
        listener_code = None
        if listener is not None:
            listener.send_signal(signal.SIGINT)
            listener.communicate(timeout=BANNER_TIMEOUT)
            listener_code = listener.returncode
    (tmp_path / "by-hand.transcript").write_text(watcher.transcript)  # to read after a failure
    return ByHand(watcher.transcript, scripts, listener_code)


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status < 500
    except OSError:
        return False
    finally:
        connection.close()


def check_changes_by_hand(by_hand: ByHand, inbound: Path) -> None:
    """An edit, a deletion and a webhook, each seen where the README says to look."""
    transcript = by_hand.transcript
    edit, deletion, webhook = by_hand.scripts
    bill_5 = [
        row
        for name in sorted(inbound.glob("*-bills.csv"))
        for row in csv.DictReader(io.StringIO(name.read_text(encoding="utf-8")))
        if row["FreshBooks Bill ID"] == "5"
    ]
    assert len(bill_5) == 2, bill_5  # as first sent, then once as edited
    assert bill_5[-1]["Subtotal"] == "12.50"
    assert "edited bill 5: amount 12.50" in transcript
    assert re.search(r"payment\s+1\s+deleted_in_freshbooks", transcript), transcript
    assert "1 object deleted in FreshBooks" in transcript  # a payment, not "1 bill"
    assert "bill_payment 1 was deleted in FreshBooks" in transcript
    # The webhook's bill reached the inbound through the listener: no sync was typed.
    assert "sync" not in webhook
    assert "webhook bill.create -> http://127.0.0.1:" in transcript
    assert "delivered (HTTP 200)" in transcript
    arrived = [p.name for p in inbound.glob("*-bills.csv") if "WEBHOOK-1" in p.read_text()]
    assert len(arrived) == 1, arrived
    assert by_hand.listener_code == 0
    assert "fbstampli sandbox freshbooks edit-bill" in edit
    assert "fbstampli sandbox freshbooks delete-payment" in deletion


@pytest.mark.slow
def test_the_readme_several_businesses_example_runs_as_written_against_the_sandboxes(
    tmp_path: Path,
) -> None:
    blocks = walkthrough_blocks(SEVERAL)
    sandbox_commands = [text for kind, text in blocks if kind == "sandbox"]
    script = "".join(text for kind, text in blocks if kind == "run")
    for step in ("business add alpha", "--business beta auth sftp", "sync --all", "status --all"):
        assert step in script, f"the example lost `{step}`"
    env = user_environment(tmp_path)
    user_home = Path(env["HOME"])
    sandboxes = [start_sandbox(command, env, user_home) for command in sandbox_commands]
    try:
        freshbooks, alpha, beta = sandboxes
        address = re.search(r"at http://(127\.0\.0\.1:\d+)", freshbooks.banner[0])
        assert address is not None, freshbooks.banner
        script = script.replace("127.0.0.1:8766", address[1])
        for written, sftp in (("2223", alpha), ("2224", beta)):
            script = script.replace(f"--port {written}", f"--port {sftp.value('port')}")
            fingerprint = sftp.value("host key").split()[1]
            script = script.replace("SHA256:…", fingerprint, 1)  # alpha's first, then beta's
        (tmp_path / "several.sh").write_text(script)
        user = User(password="", fingerprint="")

        code = type_into_a_terminal(tmp_path / "several.sh", env, user_home, user)

        # Every step succeeded (`set -e`), the last included: `status --all` exits 0, as the
        # README says, because the bills FreshBooks paid before go-live are history.
        traced = [line for line in user.transcript.splitlines() if line.startswith("+ fbstampli")]
        assert traced[-1] == "+ fbstampli status --all --attention", user.transcript
        assert script.strip().splitlines()[-1].startswith("fbstampli status --all --attention")
        assert code == 0, user.transcript
    finally:
        stopped = []
        for sandbox in sandboxes:
            sandbox.process.send_signal(signal.SIGINT)
            sandbox.process.communicate(timeout=BANNER_TIMEOUT)
            stopped.append(sandbox.process.returncode)

    assert user.answered == {URL_PROMPT: 2, BUSINESS_PROMPT: 2}, user.transcript
    assert user.chosen_businesses == ["439000", "439001"]
    for name, account in (("alpha", "ABC123"), ("beta", "ABC124")):  # each its own business
        inbound = user_home / f"stampli-{name}" / "inbound"
        files = sorted(path.name for path in inbound.iterdir() if not is_marker_name(path.name))
        assert [file.split("_")[1] for file in files] == [account] * 5, files
        assert [file.rsplit("_", 1)[1] for file in files] == [
            "0-categories.csv",
            "0-taxes.csv",
            "1-vendors.csv",
            "2-bills.csv",
            "3-payments.csv",
        ]
    status = re.split(r"\+ fbstampli status --all\r?\n", user.transcript, maxsplit=1)[1]
    assert re.search(r"alpha\W+500\W+0\W", status), status  # every bill in its Stampli
    assert re.search(r"beta\W+500\W+0\W", status), status
    assert stopped == [0, 0, 0]
