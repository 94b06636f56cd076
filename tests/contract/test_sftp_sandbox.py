"""The in-process SFTP server's own promises (confinement, rename semantics, fault hooks) and
the transport's answers to faults only the sandbox can stage."""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from fbstampli.errors import RemoteError, RemoteUnavailableError
from fbstampli.models.remote import part_name
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.sftp import HostKey, SftpTarget, SftpTransport, fetch_host_key

FINAL = "fbstampli_acme_20261125T101500Z_b000042_1-vendors.csv"


@pytest.fixture
def raw_sftp(sftp_server: SftpServer) -> paramiko.SFTPClient:
    """A bare paramiko client, to send requests our transport would refuse to send."""
    transport = paramiko.Transport((sftp_server.host, sftp_server.port))
    transport.connect(
        hostkey=sftp_server.host_key.to_pkey(),
        username=sftp_server.username,
        password=sftp_server.password,
    )
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    yield client  # type: ignore[misc]
    client.close()
    transport.close()


def test_paths_cannot_leave_the_root(
    sftp_server: SftpServer, raw_sftp: paramiko.SFTPClient
) -> None:
    secret = sftp_server.root.parent / "secret.txt"
    secret.write_text("outside")
    (sftp_server.root / "escape").symlink_to(secret)
    with raw_sftp.open("../../../secret.txt", "w") as handle:
        handle.write(b"confined")
    assert (sftp_server.root / "secret.txt").read_bytes() == b"confined"
    assert secret.read_text() == "outside"
    assert raw_sftp.normalize("../..") == "/"
    with pytest.raises(PermissionError):
        raw_sftp.open("escape").read()


def test_plain_rename_fails_on_existing_target_posix_rename_replaces(
    sftp_server: SftpServer, raw_sftp: paramiko.SFTPClient
) -> None:
    (sftp_server.root / "a").write_bytes(b"a")
    (sftp_server.root / "b").write_bytes(b"b")
    with pytest.raises(OSError, match="Failure"):
        raw_sftp.rename("a", "b")
    assert (sftp_server.root / "b").read_bytes() == b"b"
    raw_sftp.posix_rename("a", "b")
    assert (sftp_server.root / "b").read_bytes() == b"a"
    assert not (sftp_server.root / "a").exists()


def test_server_without_posix_rename_refuses_the_extension(tmp_path: Path) -> None:
    with SftpServer(tmp_path / "root", posix_rename=False) as server:
        (server.root / "a").write_bytes(b"a")
        with SftpTransport.connect(server.target(), timeout=10) as transport:
            assert not transport.has_posix_rename
        transport_ = paramiko.Transport((server.host, server.port))
        transport_.connect(username=server.username, password=server.password)
        client = paramiko.SFTPClient.from_transport(transport_)
        assert client is not None
        with pytest.raises(OSError, match="unsupported"):
            client.posix_rename("a", "b")
        client.close()
        transport_.close()


def test_held_write_blocks_only_matching_names(sftp_server: SftpServer) -> None:
    with (
        SftpTransport.connect(sftp_server.target(), timeout=10) as transport,
        sftp_server.hold("*-bills.csv.part") as hold,
    ):
        transport.write_part(".", FINAL, b"vendors pass")
        assert not hold.reached.is_set()
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (transport.write_part(".", "x_2-bills.csv", b"held"), done.set()),
            daemon=True,
        )
        worker.start()
        assert hold.reached.wait(10)
        assert not done.is_set()
        hold.release()
        worker.join(10)
        assert done.is_set()


def test_disk_full_is_a_remote_error_naming_the_path(sftp_server: SftpServer) -> None:
    sftp_server.faults.disk_full = True
    with SftpTransport.connect(sftp_server.target(), timeout=10) as transport:
        with pytest.raises(RemoteError) as caught:
            transport.write_part(".", FINAL, b"x" * 100)
        assert not isinstance(caught.value, RemoteUnavailableError)
        assert part_name(FINAL) in str(caught.value)


def test_permission_denied_is_a_remote_error_naming_the_path(sftp_server: SftpServer) -> None:
    sftp_server.faults.deny_writes = True
    with SftpTransport.connect(sftp_server.target(), timeout=10) as transport:
        with pytest.raises(RemoteError, match="permission denied") as caught:
            transport.write_part(".", FINAL, b"x")
        assert part_name(FINAL) in str(caught.value)


def test_server_without_sizes_gets_the_upload_verified_by_reading_back(
    sftp_server: SftpServer, caplog: pytest.LogCaptureFixture
) -> None:
    sftp_server.faults.report_sizes = False
    with SftpTransport.connect(sftp_server.target(), timeout=10) as transport:
        with caplog.at_level(logging.WARNING, logger="fbstampli.sftp"):
            transport.write_part(".", FINAL, b"abc" * 50_000)
        assert "reports no file size" in caplog.text
        assert transport.list_files(".")[0].size is None
        transport.rename_part(".", FINAL)
    assert (sftp_server.root / FINAL).read_bytes() == b"abc" * 50_000


def test_server_that_stops_answering_is_a_temporary_error_within_the_timeout(
    sftp_server: SftpServer,
) -> None:
    with (
        SftpTransport.connect(sftp_server.target(), timeout=0.5) as transport,
        sftp_server.hold("*"),
        pytest.raises(RemoteUnavailableError, match="stopped answering"),
    ):
        transport.write_part(".", FINAL, b"x" * 100_000)


def test_slow_writes_still_complete(sftp_server: SftpServer) -> None:
    sftp_server.faults.write_delay = 0.01
    with SftpTransport.connect(sftp_server.target(), timeout=10) as transport:
        transport.write_part(".", FINAL, b"y" * 70_000)
        transport.rename_part(".", FINAL)
    assert (sftp_server.root / FINAL).stat().st_size == 70_000


def test_rsa_host_key_is_pinned_and_negotiated(tmp_path: Path) -> None:
    with SftpServer(tmp_path / "root", host_key_type="rsa") as server:
        assert server.host_key.key_type == "ssh-rsa"
        assert fetch_host_key(server.host, server.port, timeout=10) == server.host_key
        with SftpTransport.connect(server.target(), timeout=10) as transport:
            assert transport.list_files(".") == []


def test_fingerprint_matches_ssh_keygen(sftp_server: SftpServer, tmp_path: Path) -> None:
    public = tmp_path / "key.pub"
    key = sftp_server.host_key
    public.write_text(f"{key.key_type} {key.base64}\n")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed[1] == key.sha256_fingerprint


def test_target_repr_hides_secrets() -> None:
    target = SftpTarget(
        "h",
        22,
        "u",
        HostKey("ssh-ed25519", "AAAA"),
        password="pw-secret",
        private_key="key-secret",
        passphrase="phrase-secret",
    )
    assert "secret" not in repr(target)
    assert target.host_key_name == "h"
    assert SftpTarget("h", 2222, "u", HostKey("t", "b")).host_key_name == "[h]:2222"


def test_stop_ends_every_server_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with SftpServer(tmp_path / "root") as server:
        transport = SftpTransport.connect(server.target(), timeout=10)
        transport.write_part(".", FINAL, b"x")
    transport.close()
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    for thread in leftover:
        thread.join(5)
    assert [t for t in leftover if t.is_alive()] == []
