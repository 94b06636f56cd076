"""`fbstampli sandbox sftp`: a real process a new user can log in to, stopped by Ctrl-C."""

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import one_line, read_lines_until, run, start

# In a new process: a refused port's socket is left to process exit.
pytestmark = pytest.mark.cli_process

BANNER_END = "  Ctrl-C stops"
STARTUP_TIMEOUT = 30.0


@dataclass
class Banner:
    """What the sandbox printed before serving: everything a user needs to log in."""

    lines: list[str]

    def value(self, label: str) -> str:
        prefix = f"  {label}:"
        line = next(line for line in self.lines if line.startswith(prefix))
        return line[len(prefix) :].strip()


def read_banner(process: subprocess.Popen[str]) -> Banner:
    return Banner(read_lines_until(process, lambda line: line == BANNER_END, STARTUP_TIMEOUT))


def interrupt(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Ctrl-C, as a terminal sends it; what the process said after its banner."""
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT)
    return process.returncode, stdout, stderr


def test_the_printed_log_in_line_password_and_host_key_pin_it_and_ctrl_c_exits_0_quietly(
    home: Path, tmp_path: Path
) -> None:
    root = tmp_path / "stampli"
    process = start(home, "sandbox", "sftp", "--port", "0", "--root", str(root))
    try:
        banner = read_banner(process)
        assert (root / "inbound").is_dir()
        assert (root / "outbound").is_dir()
        assert "throwaway sandbox password" in "\n".join(banner.lines)
        key_type, fingerprint = banner.value("host key").split()
        assert key_type == "ssh-ed25519"
        command = banner.value("log in").split()
        assert command[:3] == ["fbstampli", "auth", "sftp"]
        assert command[3:] == [
            "--host",
            banner.value("host"),
            "--port",
            banner.value("port"),
            "--username",
            banner.value("user"),
        ]

        pinned = run(
            home,
            *command[1:],
            "--password-stdin",
            "--accept-host-key",
            fingerprint,
            stdin=banner.value("password") + "\n",
        )
        assert pinned.code == 0, pinned.stderr
    finally:
        code, stdout, stderr = interrupt(process)

    assert code == 0
    assert stderr == ""
    assert stdout.strip() == "stopped"
    assert (root / "inbound").is_dir()  # a folder the user named is kept


def test_without_root_it_serves_a_temporary_folder_and_removes_it_on_ctrl_c(
    tmp_path: Path,
) -> None:
    process = start(tmp_path / "no-home", "sandbox", "sftp", "--port", "0")
    try:
        banner = read_banner(process)
        served = Path(banner.lines[0].split("serving ", 1)[1].split(" (", 1)[0])
        assert (served / "inbound").is_dir()
        assert (served / "outbound").is_dir()
    finally:
        code, stdout, stderr = interrupt(process)

    assert code == 0
    assert stderr == ""
    assert stdout.strip() == f"stopped; removed {served}"
    assert not served.exists()


def test_sigterm_stops_it_like_ctrl_c_and_removes_the_temporary_folder(tmp_path: Path) -> None:
    # systemd and `kill` stop a service with SIGTERM, not Ctrl-C.
    process = start(tmp_path / "no-home", "sandbox", "sftp", "--port", "0")
    try:
        banner = read_banner(process)
        served = Path(banner.lines[0].split("serving ", 1)[1].split(" (", 1)[0])
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT)

    assert process.returncode == 0
    assert stderr == ""
    assert stdout.strip() == f"stopped; removed {served}"
    assert not served.exists()


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "no-home"  # the sandbox needs no fbstampli home
    process = start(home, "sandbox", "sftp", "--port", "0")
    try:
        port = read_banner(process).value("port")
        second = run(home, "sandbox", "sftp", "--port", port, timeout=STARTUP_TIMEOUT)
    finally:
        interrupt(process)

    assert second.code == 2
    assert one_line(second.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "--port" in second.stderr


def test_with_root_the_host_key_and_password_survive_a_restart_so_the_pin_still_holds(
    home: Path, tmp_path: Path
) -> None:
    # The next day's sync must not meet "host key changed": the login is kept in --root.
    root = tmp_path / "stampli"
    first = start(home, "sandbox", "sftp", "--port", "0", "--root", str(root))
    try:
        before = read_banner(first)
        assert run(home, "init").code == 0
        pinned = run(
            home,
            *before.value("log in").split()[1:],
            "--password-stdin",
            "--accept-host-key",
            before.value("host key").split()[1],
            stdin=before.value("password") + "\n",
        )
        assert pinned.code == 0, pinned.stderr
    finally:
        interrupt(first)
    login = root / ".sandbox"
    assert oct(login.stat().st_mode & 0o777) == "0o700"
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in login.iterdir()} == {
        "host_key": "0o600",
        "password": "0o600",
    }

    second = start(home, "sandbox", "sftp", "--port", before.value("port"), "--root", str(root))
    try:
        after = read_banner(second)
        pulled = run(home, "pull-stampli", "--now")  # logs in with the stored password and pin
    finally:
        interrupt(second)

    assert after.value("password") == before.value("password")
    assert after.value("host key") == before.value("host key")
    assert "kept in" in "\n".join(after.lines)
    assert pulled.code == 0, pulled.stderr
