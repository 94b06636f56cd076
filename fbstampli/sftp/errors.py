"""Every paramiko and socket failure, translated into the project's error tree.

`RemoteUnavailableError` (try later), `RemoteError` (the server refused, with the
path), `SftpLoginError` (fix the credentials); the transport raises nothing else.
"""

from __future__ import annotations

import errno
import socket

import paramiko

from fbstampli.errors import ConfigError, FbstampliError, RemoteError, RemoteUnavailableError


class SftpLoginError(ConfigError):
    """The server refused our credentials: fix them, retrying will not help."""


def why_unreachable(error: BaseException) -> str:
    """A few words for why a connection failed, instead of paramiko's paragraph."""

    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError) and error.errors:
        return why_unreachable(next(iter(error.errors.values())))
    if isinstance(error, ConnectionRefusedError) or getattr(error, "errno", None) == 111:
        return "connection refused"
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return "unknown host name"
    if isinstance(error, ConnectionResetError | EOFError):
        return "connection closed by the server"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = str(error).strip().rstrip(".")
    return text[:80] if text else type(error).__name__


def translate(
    error: BaseException, action: str, path: str, where: str, *, connecting: bool = False
) -> FbstampliError:
    """Map a paramiko/socket exception to our error tree; `where` is `user@host:port`.

    While connecting, every failure but a refused login is temporary (refused, reset, no
    route, timeout); afterwards an `OSError` without a socket errno is an SFTP status.
    """
    if isinstance(error, FbstampliError):
        return error
    if isinstance(error, paramiko.AuthenticationException) and "timeout" in str(error).lower():
        # paramiko's "Authentication timeout.": a slow or stalled server, not a refusal.
        return RemoteUnavailableError(
            f"SFTP server {where} did not finish the login in time; will retry"
        )
    if isinstance(error, paramiko.AuthenticationException):
        return SftpLoginError(
            f"SFTP login refused for {where}; check the password with `fbstampli auth sftp`"
        )
    if connecting:
        return RemoteUnavailableError(
            f"SFTP server {where} not reachable ({why_unreachable(error)}); will retry"
        )
    if isinstance(error, (TimeoutError, ConnectionError, EOFError, paramiko.SSHException)):
        return RemoteUnavailableError(
            f"SFTP server {where} stopped answering while trying to {action} {path} "
            f"({why_unreachable(error)}); will retry"
        )
    if isinstance(error, OSError) and error.errno == errno.ENOENT:
        return RemoteError(f"SFTP server {where}: cannot {action} {path}: no such file")
    if isinstance(error, OSError) and error.errno == errno.EACCES:
        return RemoteError(f"SFTP server {where}: cannot {action} {path}: permission denied")
    if isinstance(error, OSError) and error.errno is None:
        # paramiko raises a bare IOError(text) for SFTP statuses such as SSH_FX_FAILURE,
        # which is what OpenSSH answers for a full disk or quota.
        reason = str(error) or "failure"
        return RemoteError(f"SFTP server {where}: cannot {action} {path}: {reason}")
    return RemoteUnavailableError(
        f"SFTP server {where} unavailable while trying to {action} {path} ({error}); will retry"
    )
