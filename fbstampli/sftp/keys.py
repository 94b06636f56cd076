"""Reading a private key for login: Ed25519, ECDSA or RSA, with or without a passphrase."""

from __future__ import annotations

import io
import struct
from typing import Literal

import paramiko

from fbstampli.sftp.errors import SftpLoginError
from fbstampli.sftp.target import SftpTarget

KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)
# What paramiko raises for text that is not (or not quite) a key of the class tried:
# a damaged file reaches its parsers' asserts and index errors, not only SSHException.
NOT_THIS_KIND_OF_KEY = (
    paramiko.SSHException,
    ValueError,
    IndexError,
    AssertionError,
    TypeError,
    struct.error,
)


def private_key_kind(private_key: str) -> Literal["plain", "encrypted", "unreadable"]:
    """Whether a private key needs a passphrase, or is no key we can use.

    OpenSSH's own format (`BEGIN OPENSSH PRIVATE KEY`, what ssh-keygen writes)
    does not say in its text that it is encrypted, so the key is tried.
    """
    for key_class in KEY_CLASSES:
        try:
            key_class.from_private_key(io.StringIO(private_key))
        except paramiko.PasswordRequiredException:
            return "encrypted"
        except NOT_THIS_KIND_OF_KEY:
            continue
        return "plain"
    return "unreadable"


def load_private_key(target: SftpTarget) -> paramiko.PKey:
    for key_class in KEY_CLASSES:
        try:
            return key_class.from_private_key(
                io.StringIO(target.private_key), password=target.passphrase or None
            )
        except paramiko.PasswordRequiredException:
            raise SftpLoginError(
                f"the SFTP private key for {target.address} needs its passphrase; "
                "run `fbstampli auth sftp --key-file …` again and give it when asked"
            ) from None
        except NOT_THIS_KIND_OF_KEY:
            continue
    raise SftpLoginError(
        f"the SFTP private key for {target.address} cannot be read (wrong passphrase, or not "
        "an Ed25519, ECDSA or RSA private key); run `fbstampli auth sftp --key-file …` again"
    )
