"""`auth sftp --key-file`: the keys users really have, through the real CLI and SFTP server."""

from pathlib import Path

from fbstampli.sandbox.sftp_server import generate_key_text, load_key
from tests.e2e.conftest import Connected, pin_sftp
from tests.support.summary import find_secrets

PASSPHRASE = "correct horse battery staple"


def store_key_login(connected: Connected, key_file: Path, stdin: str = "") -> tuple[int, str]:
    result = pin_sftp(
        connected.home, connected.sftp, "--key-file", str(key_file), password=False, stdin=stdin
    )
    return result.code, result.output


def test_an_ssh_keygen_style_key_with_a_passphrase_is_asked_for_it_and_pushes(
    connected: Connected, tmp_path: Path
) -> None:
    # ssh-keygen's own format says nothing about encryption in its text.
    text = generate_key_text("ed25519", passphrase=PASSPHRASE)
    assert "BEGIN OPENSSH PRIVATE KEY" in text
    assert "ENCRYPTED" not in text
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(text)
    connected.sftp.authorized_keys = (load_key(text, "ed25519", passphrase=PASSPHRASE),)

    code, output = store_key_login(connected, key_file, stdin=PASSPHRASE + "\n")
    assert code == 0, output
    connected.sftp.password = "no longer the way in"  # only the key can log in now
    push = connected.run("push-bills")
    assert push.code == 0, push.stderr
    assert len(connected.inbound_files()) == 5  # categories, taxes, vendors, bills, payments
    assert find_secrets({"key passphrase": PASSPHRASE}, {"auth sftp": output}) == []


def test_a_file_that_is_no_private_key_is_refused_before_any_connection(
    connected: Connected, tmp_path: Path
) -> None:
    key_file = tmp_path / "id_rsa.pub"
    key_file.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@host\n")
    connected.sftp.stop()  # nothing to connect to: the refusal must come first
    code, output = store_key_login(connected, key_file)
    assert code == 2
    assert output.strip() == (
        f"fbstampli: error: --key-file {key_file} is not an Ed25519, ECDSA or RSA private key"
    )


def test_a_login_that_stalls_is_a_temporary_failure_not_a_wrong_password(
    connected: Connected,
) -> None:
    connected.sftp.faults.login_delay = 3.0  # the server takes longer than our timeout
    result = pin_sftp(connected.home, connected.sftp, env={"FBSTAMPLI_SFTP_TIMEOUT_SECONDS": "1"})
    assert result.code == 75, result.stderr
    assert "did not finish the login in time" in result.stderr
    assert "password" not in result.stderr
