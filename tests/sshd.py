"""A real OpenSSH sshd on 127.0.0.1 for the transport contract tests.

Runs `/usr/sbin/sshd -D -e` with a generated host key and its own sshd_config (password and
public-key login for one Unix user, `internal-sftp` only, started in a private data folder).
Needs root: sshd must switch to the test user. `tests/sshd_setup.sh` creates that user; when
running as root this module also creates it itself. Nothing is skipped: a missing piece is a
failure that says how to fix it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fbstampli.sftp import HostKey

SSHD = "/usr/sbin/sshd"
# One Unix user per test session: sessions running at once (two developers, or CI
# beside a developer) each set their own password, so one must not reset another's.
USER = f"fbstampli-sftp-{os.getpid()}"
SETUP_HINT = "run the sshd tests as root (the CI's .ci/run does): they create their own user"


class SshdUnavailableError(RuntimeError):
    """sshd cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    username: str
    password: str
    host_key: HostKey
    root: Path  # the folder the SFTP login starts in
    authorized_keys: Path
    process: subprocess.Popen[bytes]
    base: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ensure_user() -> pwd.struct_passwd:
    """This session's user: no home, no shell, only internal-sftp through our sshd."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise SshdUnavailableError(f"Unix user {USER!r} cannot be created; {SETUP_HINT}")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SshdUnavailableError(f"useradd {USER} failed: {result.stderr.strip()}")
    return pwd.getpwnam(USER)


def _set_password(password: str | None) -> None:
    """A fresh random password for this session; `None` removes the session's user."""
    if password is None:
        subprocess.run(["userdel", USER], check=False, capture_output=True)
        return
    subprocess.run(
        ["chpasswd"], input=f"{USER}:{password}\n", text=True, check=True, capture_output=True
    )


def start_sshd() -> Sshd:
    if not os.path.exists(SSHD):
        raise SshdUnavailableError(f"{SSHD} is missing: install openssh-server; {SETUP_HINT}")
    if os.geteuid() != 0:
        raise SshdUnavailableError(f"sshd must start as root to log a user in; {SETUP_HINT}")
    user = _ensure_user()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
    # Outside pytest's 0700 tmp tree: the test user must be able to reach its folder.
    base = Path(tempfile.mkdtemp(prefix="fbstampli-sshd-"))
    base.chmod(0o755)
    root = base / "data"
    root.mkdir()
    os.chown(root, user.pw_uid, user.pw_gid)
    key_path = base / "ssh_host_ed25519_key"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "fbstampli-test",
            "-f",
            str(key_path),
        ],
        check=True,
        capture_output=True,
    )
    key_type, key_base64 = key_path.with_suffix(".pub").read_text().split()[:2]
    authorized_keys = base / "authorized_keys"
    authorized_keys.touch(mode=0o644)
    port = _free_port()
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {key_path}",
                f"PidFile {base / 'sshd.pid'}",
                "UsePAM no",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                f"AuthorizedKeysFile {authorized_keys}",
                "StrictModes no",
                "PermitRootLogin no",
                f"AllowUsers {USER}",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "MaxStartups 100",
                "MaxAuthTries 6",
                "LogLevel VERBOSE",
                "Subsystem sftp internal-sftp",
                f"ForceCommand internal-sftp -d {root}",
                "",
            ]
        )
    )
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise SshdUnavailableError(f"sshd rejects its test config: {check.stderr.strip()}")
    password = secrets.token_urlsafe(16)
    _set_password(password)
    log_path = base / "sshd.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise SshdUnavailableError(f"sshd exited at start: {log_path.read_text().strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise SshdUnavailableError(
                    f"sshd did not listen on 127.0.0.1:{port}: {log_path.read_text().strip()}"
                ) from None
            time.sleep(0.05)
    return Sshd(
        "127.0.0.1",
        port,
        USER,
        password,
        HostKey(key_type, key_base64),
        root,
        authorized_keys,
        process,
        base,
    )


def stop_sshd(sshd: Sshd) -> None:
    sshd.process.terminate()
    try:
        sshd.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sshd.process.kill()
        sshd.process.wait()
    _set_password(None)
    shutil.rmtree(sshd.base, ignore_errors=True)


def reset_root(sshd: Sshd) -> None:
    """Empty the data folder between tests, keeping its ownership."""
    for child in sshd.root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def chown_to_user(path: Path) -> None:
    user = pwd.getpwnam(USER)
    os.chown(path, user.pw_uid, user.pw_gid)
