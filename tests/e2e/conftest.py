"""End-to-end fixtures: the real CLI against the FreshBooks sandbox and a real SFTP server."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fbstampli.options import Options
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.sandbox import REDIRECT_URI, connect_home, sandbox_config
from tests.support.cli import Result, run


@pytest.fixture
def freshbooks() -> Iterator[FreshBooksSandbox]:
    with FreshBooksSandbox() as sandbox:
        sandbox.seed(vendors=6, bills=30, payments=10, seed=7)
        yield sandbox


@pytest.fixture
def sftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "stampli-sftp"
    for folder in ("inbound", "outbound"):
        (root / folder).mkdir(parents=True)
    return root


@pytest.fixture
def sftp_server(sftp_root: Path) -> Iterator[SftpServer]:
    with SftpServer(sftp_root) as server:
        yield server


@dataclass
class Connected:
    """A home logged in to the sandbox and pinned to the SFTP server."""

    home: Path
    freshbooks: FreshBooksSandbox
    sftp: SftpServer

    def run(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> Result:
        return run(self.home, *args, env=env, stdin=stdin)

    @property
    def inbound(self) -> Path:
        return self.sftp.root / "inbound"

    def inbound_files(self) -> list[str]:
        """What fbstampli sent: every file but the marker (`sync.marker`), `.part` names kept."""
        from fbstampli.sync.marker import is_marker_name

        return sorted(path.name for path in self.inbound.iterdir() if not is_marker_name(path.name))

    def secrets(self) -> list[str]:
        """Every secret this home holds, to grep outputs and logs for."""
        from fbstampli.clock import SystemClock
        from fbstampli.store import open_state

        store, key = open_state(self.home / "state.db", {}, SystemClock())
        try:
            values = [str(row["value"]) for row in store.query("SELECT value FROM credentials")]
        finally:
            store.close()
        import json

        token = json.loads(next(v for v in values if v.startswith("{")))
        return [
            key.hex,
            self.sftp.password,
            self.freshbooks.client_secret,
            token["access_token"],
            token["refresh_token"],
        ]

    def named_secrets(self) -> dict[str, str]:
        """`secrets()` by name, for reports of where one was found."""
        names = ("state key", "SFTP password", "client secret", "access token", "refresh token")
        return dict(zip(names, self.secrets(), strict=True))


def pin_sftp(
    home: Path,
    sftp: SftpServer,
    *extra: str,
    password: bool = True,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """`fbstampli auth sftp` against `sftp`, pinning its host key; the password goes on
    standard input unless `password` is False (a `--key-file` in `extra`, say)."""
    args = ["auth", "sftp", "--host", sftp.host, "--port", str(sftp.port)]
    args += ["--username", sftp.username, "--accept-host-key", sftp.host_key.sha256_fingerprint]
    if password:
        args.append("--password-stdin")
        stdin = sftp.password + "\n"
    return run(home, *args, *extra, stdin=stdin, env=env)


def connect(home: Path, freshbooks: FreshBooksSandbox, sftp: SftpServer) -> Connected:
    """init, auth login and auth sftp through the CLI, as a user would."""
    assert run(home, "init", "--key-source", "file").code == 0
    (home / "config.toml").write_text(sandbox_config(freshbooks, business="sandbox"))
    code = freshbooks.issue_code(REDIRECT_URI)
    login = run(home, "auth", "login", "--code", code)
    assert login.code == 0, login.stderr
    pin = pin_sftp(home, sftp)
    assert pin.code == 0, pin.stderr
    return Connected(home, freshbooks, sftp)


def connect_quickly(home: Path, freshbooks: FreshBooksSandbox, sftp: SftpServer) -> Connected:
    """The same home through the same services, in this process: 0.4 s instead of 3.7 s.

    Most end-to-end tests are about what comes after setting up; the set-up
    commands themselves run through the CLI in `test_connect_through_the_cli_*`,
    the README walk-through and the FreshBooks and SFTP suites.
    """
    connect_home(Options(home=home, env={}), freshbooks, sftp, business="sandbox")
    return Connected(home, freshbooks, sftp)


@pytest.fixture
def connected(tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer) -> Connected:
    return connect_quickly(tmp_path / "home", freshbooks, sftp_server)
