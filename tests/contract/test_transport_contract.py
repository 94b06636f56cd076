"""The `Transport` contract, run against every server in `remote` (sandbox, plain-rename
sandbox, OpenSSH sshd, and the tests' `MemoryTransport`): atomic `.part` uploads, no
overwrites, pinned host keys, safe names, capped atomic downloads."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fbstampli.errors import (
    ConfigError,
    HostKeyError,
    RemoteError,
    RemoteUnavailableError,
)
from fbstampli.models.remote import RemoteFile, part_name
from fbstampli.sandbox.sftp_server import generate_key, generate_key_text, load_key
from fbstampli.sftp import HostKey, SftpLoginError, SftpTransport, fetch_host_key
from fbstampli.sync.ports import Transport
from tests.contract.conftest import MemoryRemote, Remote, sftp_only


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


FINAL = "fbstampli_acme_20261125T101500Z_b000042_2-bills.csv"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, many SFTP requests


@pytest.fixture
def transport(remote: Remote | MemoryRemote) -> Iterator[SftpTransport]:
    remote.make_dir("inbound")
    remote.make_dir("outbound")
    connected = remote.connect()
    yield connected
    connected.close()


def names(transport: SftpTransport, directory: str = "inbound") -> list[str]:
    return [remote_file.name for remote_file in transport.list_files(directory)]


def test_sftp_transport_satisfies_the_transport_protocol(transport: SftpTransport) -> None:
    port: Transport = transport
    assert port is transport


def test_upload_goes_to_part_name_with_verified_size_then_renames(
    remote: Remote | MemoryRemote, transport: SftpTransport
) -> None:
    transport.write_part("inbound", FINAL, PAYLOAD)
    assert transport.list_files("inbound")[0].name == part_name(FINAL) == f".{FINAL}.part"
    assert transport.list_files("inbound")[0].size == len(PAYLOAD)
    assert not transport.exists("inbound", FINAL)
    transport.rename_part("inbound", FINAL)
    assert names(transport) == [FINAL]
    assert remote.read(f"inbound/{FINAL}") == PAYLOAD


def test_a_local_file_is_streamed_to_the_part_name_verified_then_renamed(
    remote: Remote | MemoryRemote, transport: SftpTransport, tmp_path: Path
) -> None:
    document = tmp_path / "document.pdf"
    content = b"%PDF-1.7\n" + bytes(range(256)) * 4000  # several blocks
    document.write_bytes(content)
    transport.write_part_file("inbound", FINAL, document)
    assert transport.list_files("inbound")[0].name == part_name(FINAL)
    assert transport.list_files("inbound")[0].size == len(content)
    transport.rename_part("inbound", FINAL)
    assert remote.read(f"inbound/{FINAL}") == content


def test_reader_never_sees_the_final_name_during_an_upload(
    remote: Remote | MemoryRemote, transport: SftpTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            transport.write_part("inbound", FINAL, PAYLOAD)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    with remote.gate_uploads(monkeypatch) as gate:
        worker = threading.Thread(target=upload, daemon=True)
        worker.start()
        assert gate.reached.wait(30)
        with remote.connect() as reader:
            during = reader.list_files("inbound")
        gate.release()
        worker.join(30)
    assert not errors
    assert [f.name for f in during] == [part_name(FINAL)]
    assert during[0].size is not None
    assert during[0].size < len(PAYLOAD)
    with remote.connect() as reader:
        assert names(reader) == [part_name(FINAL)]
        transport.rename_part("inbound", FINAL)
        assert names(reader) == [FINAL]


def test_rename_refuses_to_overwrite_an_existing_final_name(
    remote: Remote | MemoryRemote, transport: SftpTransport
) -> None:
    assert transport.has_posix_rename is remote.posix_rename
    remote.put(f"inbound/{FINAL}", b"already delivered")
    transport.write_part("inbound", FINAL, PAYLOAD)
    with pytest.raises(RemoteError, match="already exists"):
        transport.rename_part("inbound", FINAL)
    assert remote.read(f"inbound/{FINAL}") == b"already delivered"
    assert transport.exists("inbound", part_name(FINAL))


def test_rename_of_a_missing_part_is_a_remote_error(transport: SftpTransport) -> None:
    with pytest.raises(RemoteError, match="no such file"):
        transport.rename_part("inbound", FINAL)


@sftp_only
def test_pinned_host_key_is_accepted_and_matches_fetch_host_key(
    remote: Remote,
) -> None:
    fetched = fetch_host_key(remote.target.host, remote.target.port, timeout=10)
    assert fetched == remote.target.host_key
    assert fetched.sha256_fingerprint.startswith("SHA256:")
    with remote.connect() as connected:
        assert connected.list_files(".") is not None


@sftp_only
@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_changed_host_key_is_refused_naming_both_fingerprints(
    remote: Remote, key_type: str
) -> None:
    impostor = HostKey.from_pkey(generate_key(key_type))
    with pytest.raises(HostKeyError) as caught:
        remote.connect(host_key=impostor)
    message = str(caught.value)
    assert f"{remote.target.host}:{remote.target.port}" in message
    assert impostor.sha256_fingerprint in message
    assert remote.target.host_key.sha256_fingerprint in message
    assert "fbstampli auth sftp" in message
    assert "\n" not in message


@sftp_only
def test_wrong_password_is_a_one_line_login_error(remote: Remote) -> None:
    with pytest.raises(SftpLoginError) as caught:
        remote.connect(password="not-the-password")
    assert isinstance(caught.value, ConfigError)
    message = str(caught.value)
    assert message == (
        f"SFTP login refused for {remote.target.username}@{remote.target.host}:"
        f"{remote.target.port}; check the password with `fbstampli auth sftp`"
    )
    assert "not-the-password" not in message


@sftp_only
def test_private_key_login_works(remote: Remote) -> None:
    text = generate_key_text("ed25519", passphrase="pass phrase")
    remote.authorize(load_key(text, "ed25519", passphrase="pass phrase"))
    with remote.connect(password="", private_key=text, passphrase="pass phrase") as connected:
        assert connected.list_files(".") is not None
    with pytest.raises(SftpLoginError, match="passphrase"):
        remote.connect(password="", private_key=text, passphrase="")


@sftp_only
def test_unreachable_server_is_temporary(remote: Remote) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(RemoteUnavailableError):
        remote.connect(port=free_port)
    with pytest.raises(RemoteUnavailableError):
        fetch_host_key("127.0.0.1", free_port, timeout=5)


def test_dropped_connection_mid_upload_leaves_no_final_name(
    remote: Remote | MemoryRemote, transport: SftpTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    with remote.gate_uploads(monkeypatch, drop=True), pytest.raises(RemoteUnavailableError):
        transport.write_part("inbound", FINAL, PAYLOAD)
    with pytest.raises(RemoteUnavailableError):
        transport.rename_part("inbound", FINAL)
    transport.close()
    with remote.connect() as again:
        assert FINAL not in names(again)
        if again.exists("inbound", part_name(FINAL)):
            again.remove("inbound", part_name(FINAL))
        again.write_part("inbound", FINAL, PAYLOAD)
        again.rename_part("inbound", FINAL)
    assert remote.read(f"inbound/{FINAL}") == PAYLOAD


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "x\x00y", "a\\b", "a\nb"])
def test_unsafe_names_are_refused_before_any_request(transport: SftpTransport, bad: str) -> None:
    calls = [
        lambda: transport.write_part("inbound", bad, b"x"),
        lambda: transport.rename_part("inbound", bad),
        lambda: transport.exists("inbound", bad),
        lambda: transport.remove("inbound", bad),
        lambda: transport.download("inbound", bad, Path("/nonexistent/x"), max_bytes=10),
        lambda: transport.move("inbound", bad, "archive"),
    ]
    for call in calls:
        with pytest.raises(RemoteError, match="unsafe remote file name"):
            call()


@pytest.mark.parametrize("bad", ["../outside", "inbound/../..", "a\\b"])
def test_unsafe_directories_are_refused(transport: SftpTransport, bad: str) -> None:
    with pytest.raises(RemoteError, match="unsafe remote directory"):
        transport.list_files(bad)


def test_download_streams_to_dest_atomically_with_sha256(
    remote: Remote | MemoryRemote, transport: SftpTransport, downloads: Path
) -> None:
    remote.put("outbound/stampli_capture_1.csv", PAYLOAD)
    dest = downloads / "capture.csv"
    size, digest = transport.download(
        "outbound", "stampli_capture_1.csv", dest, max_bytes=len(PAYLOAD)
    )
    assert (size, digest) == (len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in downloads.iterdir()) == ["capture.csv"]


def test_download_over_the_size_cap_is_refused_and_leaves_dest_untouched(
    remote: Remote | MemoryRemote, transport: SftpTransport, downloads: Path
) -> None:
    remote.put("outbound/stampli_capture_1.csv", PAYLOAD)
    dest = downloads / "capture.csv"
    dest.write_bytes(b"previous")
    with pytest.raises(RemoteError, match="larger than the"):
        transport.download("outbound", "stampli_capture_1.csv", dest, max_bytes=len(PAYLOAD) - 1)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in downloads.iterdir()) == ["capture.csv"]


def test_download_of_a_missing_file_is_a_remote_error(
    transport: SftpTransport, downloads: Path
) -> None:
    with pytest.raises(RemoteError, match="no such file"):
        transport.download("outbound", "absent.csv", downloads / "x", max_bytes=10)
    assert list(downloads.iterdir()) == []


@sftp_only
def test_list_returns_only_regular_files(remote: Remote, transport: SftpTransport) -> None:
    remote.put("outbound/b.csv", b"bb")
    remote.put("outbound/a.csv", b"a")
    remote.make_dir("outbound/sub")
    (remote.root / "outbound" / "link.csv").symlink_to(remote.root / "outbound" / "a.csv")
    listed = transport.list_files("outbound")
    assert [(f.name, f.size) for f in listed] == [("a.csv", 1), ("b.csv", 2)]
    assert all(isinstance(f, RemoteFile) and f.mtime is not None for f in listed)
    assert listed[0].mtime is not None
    assert listed[0].mtime.utcoffset() is not None


def test_remove_of_a_missing_file_is_fine(
    remote: Remote | MemoryRemote, transport: SftpTransport
) -> None:
    remote.put("inbound/x.csv", b"x")
    transport.remove("inbound", "x.csv")
    transport.remove("inbound", "x.csv")
    assert not transport.exists("inbound", "x.csv")


def test_move_to_archive_creates_it_and_never_overwrites(
    remote: Remote | MemoryRemote, transport: SftpTransport
) -> None:
    remote.put("outbound/stampli_capture_1.csv", b"first")
    transport.move("outbound", "stampli_capture_1.csv", "outbound/archive")
    assert remote.read("outbound/archive/stampli_capture_1.csv") == b"first"
    assert not transport.exists("outbound", "stampli_capture_1.csv")
    remote.put("outbound/stampli_capture_1.csv", b"second")
    with pytest.raises(RemoteError, match="already exists"):
        transport.move("outbound", "stampli_capture_1.csv", "outbound/archive")
    assert remote.read("outbound/archive/stampli_capture_1.csv") == b"first"


def test_close_is_idempotent_and_later_calls_are_temporary_errors(
    remote: Remote | MemoryRemote,
) -> None:
    connected = remote.connect()
    connected.close()
    connected.close()
    with pytest.raises(RemoteUnavailableError, match="closed"):
        connected.list_files(".")


MARKER = ".fbstampli-acme.json"


def test_replace_file_writes_a_dot_name_whole_and_replaces_the_old_one(
    remote: Remote | MemoryRemote, transport: SftpTransport
) -> None:
    assert transport.read_file("inbound", MARKER, max_bytes=1024) is None
    transport.replace_file("inbound", MARKER, b'{"last_batch": 1}')
    transport.replace_file("inbound", MARKER, b'{"last_batch": 2}')
    assert remote.read(f"inbound/{MARKER}") == b'{"last_batch": 2}'
    assert transport.read_file("inbound", MARKER, max_bytes=1024) == b'{"last_batch": 2}'
    assert names(transport) == [MARKER]  # no temporary name left


def test_read_file_refuses_a_file_larger_than_asked(
    remote: Remote | MemoryRemote, transport: SftpTransport
) -> None:
    transport.replace_file("inbound", MARKER, b"x" * 2048)
    with pytest.raises(RemoteError, match="larger than"):
        transport.read_file("inbound", MARKER, max_bytes=1024)
