"""`fbstampli sandbox sftp`: the in-process SFTP server, served by hand as a Stampli stand-in.

For trying `auth sftp`, `doctor` and `sync` without a Stampli account; nothing
here is for production. With `--root DIR` the login (host key and password) is
kept in `DIR/.sandbox/` (0600) and used again at the next start, so the host key
pinned yesterday still matches; a temporary folder gets a new one each time.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from fbstampli.errors import ConfigError
from fbstampli.sandbox.sftp_login import SandboxLogin, kept_login
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.signals import stop_signals

FOLDERS = ("inbound", "outbound")


def run_sftp_sandbox(
    *, host: str, port: int, root: Path | None, show: Callable[[str], None]
) -> None:
    """Serve `root` (a new temporary folder when None) until Ctrl-C or SIGTERM; say how to log in.

    A folder the user named is kept afterwards, with whatever fbstampli uploaded;
    a temporary one is removed, however the command is stopped short of SIGKILL.
    """
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-sftp-")) if root is None else root.resolve()
    # A client hanging up mid-handshake (a port probe, a refused key) is not news here.
    logging.getLogger("fbstampli.sandbox.sftp_server.transport").setLevel(logging.CRITICAL)
    stop = threading.Event()
    try:
        with stop_signals(stop):
            try:
                for name in FOLDERS:
                    (folder / name).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(
                    f"cannot serve {folder} ({error.strerror}); choose another --root"
                ) from None
            login = kept_login(folder) if root is not None else SandboxLogin.new()
            server = SftpServer(folder, port=port, password=login.password, host_pkey=login.pkey)
            _serve(server, host, show, stop, kept=root is not None)
    finally:
        if root is None:
            shutil.rmtree(folder, ignore_errors=True)
    show("stopped" if root is not None else f"stopped; removed {folder}")


def _serve(
    server: SftpServer,
    host: str,
    show: Callable[[str], None],
    stop: threading.Event,
    *,
    kept: bool,
) -> None:
    server.host = host  # the server binds to `host` when started (127.0.0.1 unless told)
    try:
        server.start()
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {host}:{server.port} ({error.strerror or error}); "
            "choose another --host or --port"
        ) from None
    try:
        for line in _login_lines(server, kept=kept):
            show(line)
        stop.wait()
    finally:
        server.stop()


def _login_lines(server: SftpServer, *, kept: bool) -> list[str]:
    kind = "kept afterwards" if kept else "removed when stopped"
    lasts = (
        f"kept in {server.root / '.sandbox'} for the next start"
        if kept
        else "new at every start; --root DIR keeps it"
    )
    return [
        f"Stampli SFTP sandbox at {server.host}:{server.port}, serving {server.root} ({kind})",
        f"  host:     {server.host}",
        f"  port:     {server.port}",
        f"  user:     {server.username}",
        f"  password: {server.password}",
        f"            (a throwaway sandbox password, {lasts}; not a secret to keep)",
        f"  host key: {server.host_key.key_type} {server.host_key.sha256_fingerprint}",
        f"  folders:  {', '.join(name + '/' for name in FOLDERS)}",
        f"  log in:   fbstampli auth sftp --host {server.host} --port {server.port} "
        f"--username {server.username}",
        "  Ctrl-C stops",
    ]
