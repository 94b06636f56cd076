"""The standalone executable behaves as the pip-installed program, with no Python on the host.

`scripts/build-executable` runs once per session into a temporary folder (1.5 to 3
minutes: a fresh virtual environment, then PyInstaller); FBSTAMPLI_TEST_EXECUTABLE
names an already built one instead. Every run finds the executable through a
link in a folder that is the whole PATH (so no python is on it) and has no
PYTHONPATH or PYTHONHOME: nothing from this checkout or its environment can
stand in for what the build left out.
"""

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from fbstampli import __version__
from fbstampli.cli import app
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.sandbox.stampli import StampliSimulator
from fbstampli.services.sandbox import REDIRECT_URI, sandbox_config
from tests.support.cli import REPO, Result, cli_env

# One worker builds the executable once (xdist `--dist loadgroup`), not one build per worker.
pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.xdist_group("executable")]


@pytest.fixture(scope="session")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built program: the build script's own output, built the way a user builds it."""
    given = os.environ.get("FBSTAMPLI_TEST_EXECUTABLE")
    if given:
        return Path(given).resolve()
    folder = tmp_path_factory.mktemp("executable")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = sys.executable
    build = subprocess.run(
        [
            *("bash", str(REPO / "scripts" / "build-executable")),
            *("--dist", str(folder / "dist"), "--work", str(folder / "work")),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    program = folder / "dist" / "fbstampli" / "fbstampli"
    assert program.is_file()
    return program


@dataclass(frozen=True)
class Standalone:
    """Runs `fbstampli` the way cron on a host without Python would."""

    bin: Path  # the whole PATH: a link to the executable, as in /usr/local/bin

    def run(
        self,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        stdin: str = "",
        timeout: float = 120,
    ) -> Result:
        environment = {
            "PATH": str(self.bin),
            "HOME": str(home.parent),
            "TMPDIR": str(home.parent),
            "FBSTAMPLI_HOME": str(home),
            "COLUMNS": "200",
            "LANG": "C.UTF-8",
        }
        environment.update(env or {})
        done = subprocess.run(
            ["fbstampli", *args],  # found through PATH, so through the link
            env=environment,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def standalone(executable: Path, tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    folder = tmp_path_factory.mktemp("bin")
    (folder / "fbstampli").symlink_to(executable)
    assert sorted(path.name for path in folder.iterdir()) == ["fbstampli"]
    return Standalone(folder)


def pip_run(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """The same command line through the pip-installed program (this checkout)."""
    environment = cli_env(home, env)
    environment.pop("PYTHON_KEYRING_BACKEND")  # let keyring choose, as for the executable
    done = subprocess.run(
        [sys.executable, "-m", "fbstampli", *args],
        env=environment,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def help_commands(text: str) -> list[str]:
    """The command names a `--help` screen lists, from every section after the options
    (the top level groups them: "Daily …:", "Setup:", …; a sub-group says "Commands:")."""
    names: list[str] = []
    listing = False
    for line in text.splitlines():
        if line and not line.startswith(" "):  # a section title, or the usage line
            listing = line.endswith(":") and line not in ("Options:", "Arguments:")
            continue
        match = re.match(r"^  ([a-z][\w-]*)(\s|$)", line)
        if listing and match:
            names.append(match.group(1))
    return names


def groups(
    command: TyperGroup, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], TyperGroup]]:
    yield path, command
    for name, sub in command.commands.items():
        if isinstance(sub, TyperGroup):
            yield from groups(sub, (*path, name))


def test_version_is_the_package_version(standalone: Standalone, tmp_path: Path) -> None:
    result = standalone.run(tmp_path / "home", "--version")
    assert result.code == 0, result.stderr
    assert result.stdout == f"fbstampli {__version__}\n"


def test_help_lists_every_command_the_installed_program_has(
    standalone: Standalone, tmp_path: Path
) -> None:
    top = typer.main.get_command(app)
    assert isinstance(top, TyperGroup)
    for path, group in groups(top):
        result = standalone.run(tmp_path / "home", *path, "--help")
        assert result.code == 0, (path, result.stderr)
        assert sorted(help_commands(result.stdout)) == sorted(group.commands), path


def test_demo_runs_the_whole_flow_with_the_packaged_template(
    standalone: Standalone, tmp_path: Path
) -> None:
    result = standalone.run(tmp_path / "unused-home", "demo", "--bills", "10", timeout=180)
    assert result.code == 0, result.stderr
    assert "2-bills.csv" in result.stdout
    assert "0 new files" in result.stdout  # the second push sent nothing twice
    assert "changed in FreshBooks" in result.stdout
    assert [path.name for path in tmp_path.iterdir()] == []  # nothing left behind


def test_set_up_doctor_push_pull_and_reconcile_against_the_sandboxes(
    standalone: Standalone, tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    home = tmp_path / "home"
    init = standalone.run(home, "init", "--key-source", "file")
    assert init.code == 0, init.stderr
    packaged = resources.files("fbstampli").joinpath("templates/config.toml").read_text()
    assert (home / "config.toml").read_text() == packaged
    (home / "config.toml").write_text(sandbox_config(freshbooks, business="sandbox"))
    code = freshbooks.issue_code(REDIRECT_URI)
    login = standalone.run(home, "auth", "login", "--code", code)
    assert login.code == 0, login.stderr
    pin = standalone.run(
        home,
        *("auth", "sftp", "--host", sftp_server.host, "--port", str(sftp_server.port)),
        *("--username", sftp_server.username, "--password-stdin"),
        *("--accept-host-key", sftp_server.host_key.sha256_fingerprint),
        stdin=sftp_server.password + "\n",
    )
    assert pin.code == 0, pin.stderr

    doctor = standalone.run(home, "doctor")
    assert doctor.code == 0, doctor.stdout + doctor.stderr
    assert all(line.startswith("ok ") for line in doctor.stdout.splitlines()), doctor.stdout

    vendor = sorted(freshbooks.data.vendors)[0]
    lines = [{"description": "paid", "quantity": 1, "unit_cost": "100.00"}]
    paid = freshbooks.create_bill(vendor, bill_number="PAID", currency_code="USD", lines=lines)
    freshbooks.create_payment(paid, amount="100.00")
    push = standalone.run(home, "push-bills", "--json")
    assert push.code == 0, push.stderr
    assert json.loads(push.stdout)["counts"]["files.bill"] == 1

    # The Stampli stand-in reads the bills through the packaged template's columns.
    stampli = StampliSimulator(sftp_server.root)
    inbound = stampli.inbound_bills()
    assert paid in inbound
    stampli.export_captures(list(inbound.values()))
    stampli.export_payments([(inbound[paid], Decimal("100.00"), "USD")])
    pull = standalone.run(home, "pull-stampli", "--now", "--json")
    assert pull.code == 0, pull.stderr
    assert json.loads(pull.stdout)["counts"]["records"] == len(inbound) + 1

    reconcile = standalone.run(home, "reconcile", "--format", "json")
    assert reconcile.code in (0, 1), reconcile.stderr
    items = json.loads(reconcile.stdout)["items"]
    assert {item["fb_bill_id"]: item["outcome"] for item in items}[paid] == "matched"

    # The pip-installed program reads the executable's state and sees the same trail.
    own = standalone.run(home, "audit", "--bill", str(paid), "--format", "json")
    other = pip_run(home, "audit", "--bill", str(paid), "--format", "json")
    assert own.code == other.code == 0, own.stderr + other.stderr
    assert json.loads(own.stdout) == json.loads(other.stdout)
    assert "stampli_payment" in [row["action"] for row in json.loads(own.stdout)]


class SecretServiceStandIn:
    """A private D-Bus session bus where `org.freedesktop.secrets` is taken, every call refused.

    keyring picks its Secret Service backend only if that backend was imported
    through keyring's entry points and D-Bus says the name is there; the
    refusal then comes back as secretstorage's `DBusErrorResponse`. Without the
    entry points keyring falls back to its `fail` backend: `NoKeyringError`.
    """

    def __init__(self, folder: Path) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self.address = f"unix:path={folder / 'bus'}"
        self.daemon = subprocess.Popen(
            [
                *("dbus-daemon", "--session", "--nofork", "--nopidfile"),
                *("--print-address=1", f"--address={self.address}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.daemon.stdout is not None
        self.daemon.stdout.readline()  # printed once it listens
        self.connection = open_dbus_connection(bus=self.address)
        self.calls: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        from jeepney import MessageType, new_error
        from jeepney.bus_messages import message_bus

        self.connection.send_and_get_reply(message_bus.RequestName("org.freedesktop.secrets"))
        while not self._stop.is_set():
            try:
                message = self.connection.receive(timeout=0.2)
            except TimeoutError:
                continue
            if message.header.message_type == MessageType.method_call:
                self.calls.append(str(message.header.fields.get(3)))  # the member name
                error = new_error(message, "org.freedesktop.DBus.Error.AccessDenied", "s", ("no",))
                self.connection.send(error)

    def __enter__(self) -> "SecretServiceStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.connection.close()
        self.daemon.terminate()
        self.daemon.wait(timeout=10)
        assert self.daemon.stdout is not None
        self.daemon.stdout.close()


def test_keyring_finds_its_secret_service_backend_through_entry_points(
    standalone: Standalone, tmp_path: Path
) -> None:
    with SecretServiceStandIn(tmp_path) as service:
        bus = {"DBUS_SESSION_BUS_ADDRESS": service.address}
        own = standalone.run(tmp_path / "a", "init", "--key-source", "keyring", env=bus)
        calls = len(service.calls)
        other = pip_run(tmp_path / "b", "init", "--key-source", "keyring", env=bus)
    assert own.code == 4, own.stderr
    assert "(DBusErrorResponse)" in own.stderr  # not NoKeyringError: the backend was found
    assert calls > 0  # and it spoke D-Bus from inside the executable
    assert (other.code, other.stderr) == (own.code, own.stderr)


def test_it_starts_where_the_temp_folder_is_mounted_noexec(
    standalone: Standalone, tmp_path: Path
) -> None:
    """Hardened hosts mount /tmp noexec; the one-file form unpacks its libraries there and
    dies with exit 127 (`failed to map segment`), which is why the build makes a folder."""
    noexec = tmp_path / "noexec"
    noexec.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "noexec,size=64m", "tmpfs", str(noexec)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a noexec tmpfs needs root, as CI runs")
    try:
        result = standalone.run(tmp_path / "home", "--version", env={"TMPDIR": str(noexec)})
    finally:
        subprocess.run(["umount", str(noexec)], check=True)
    assert result.code == 0, result.stderr
    assert result.stdout == f"fbstampli {__version__}\n"
