"""The SFTP transport to Stampli: pinned host key, `.part` uploads renamed into place, downloads.

It satisfies `sync.ports.Transport` and is the only product package that imports paramiko;
every paramiko and socket exception is translated here into `RemoteUnavailableError` (try
later), `RemoteError` (the server refused, with the path), `HostKeyError` or `SftpLoginError`.

`target` says where and as whom, `keys` reads a private key, `connect` opens the pinned
session, `transport` uploads, lists and downloads, `streams` holds the local side of a
transfer and `errors` the translation.
"""

from fbstampli.sftp.connect import POSIX_RENAME, fetch_host_key
from fbstampli.sftp.errors import SftpLoginError
from fbstampli.sftp.keys import private_key_kind
from fbstampli.sftp.target import HostKey, SftpTarget, check_directory, check_name
from fbstampli.sftp.transport import SftpTransport

__all__ = [
    "POSIX_RENAME",
    "HostKey",
    "SftpLoginError",
    "SftpTarget",
    "SftpTransport",
    "check_directory",
    "check_name",
    "fetch_host_key",
    "private_key_kind",
]
