"""Wiring the SFTP transport to the state store: the login and the pinned host key.

The non-secret description of the target (host, port, user, folders, host
key) is kept in `kv` as `sftp.target` so `status` can show it; the password,
private key and passphrase are kept as secrets and never leave this module
except inside an `SftpTarget`, whose repr hides them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fbstampli.config import Settings
from fbstampli.errors import ConfigError
from fbstampli.logs import register_secret
from fbstampli.store import Store

if TYPE_CHECKING:
    from fbstampli.runtime import Runtime
    from fbstampli.sftp import HostKey, SftpTarget, SftpTransport

TARGET_KEY = "sftp.target"
SECRETS = ("sftp.password", "sftp.private_key", "sftp.passphrase")


def stored_description(store: Store) -> dict[str, Any] | None:
    value = store.get_json(TARGET_KEY)
    return value if isinstance(value, dict) else None


def with_stored_folders(settings: Settings, store: Store) -> Settings:
    """Folders given to `auth sftp --inbound/--outbound` belong to that login and win over
    the config file; a login stored without them leaves the config in charge."""
    described = stored_description(store)
    if not described:
        return settings
    stampli = replace(
        settings.stampli,
        inbound_dir=described.get("inbound") or settings.stampli.inbound_dir,
        outbound_dir=described.get("outbound") or settings.stampli.outbound_dir,
    )
    return replace(settings, stampli=stampli)


def load_target(store: Store, settings: Settings) -> SftpTarget:
    from fbstampli.sftp import HostKey, SftpTarget

    described = stored_description(store)
    if described is None:
        raise ConfigError("no Stampli SFTP login stored; run `fbstampli auth sftp`")
    secrets = {name: store.get_secret(name) or "" for name in SECRETS}
    for value in secrets.values():
        register_secret(value)
    return SftpTarget(
        host=described["host"],
        port=int(described["port"]),
        username=described["username"],
        host_key=HostKey(described["host_key_type"], described["host_key_base64"]),
        password=secrets["sftp.password"],
        private_key=secrets["sftp.private_key"],
        passphrase=secrets["sftp.passphrase"],
        inbound_dir=settings.stampli.inbound_dir,
        outbound_dir=settings.stampli.outbound_dir,
    )


def save_target(
    store: Store, target: SftpTarget, *, inbound: str | None = None, outbound: str | None = None
) -> None:
    """Store the login; `inbound`/`outbound` only when given, so the config keeps the rest."""
    description = {
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "inbound": inbound,
        "outbound": outbound,
        "host_key_type": target.host_key.key_type,
        "host_key_base64": target.host_key.base64,
        "host_key_fingerprint": target.host_key.sha256_fingerprint,
        "auth": "key" if target.private_key else "password",
    }
    with store.transaction():
        store.put_json(TARGET_KEY, description)
        for name, value in zip(
            SECRETS, (target.password, target.private_key, target.passphrase), strict=True
        ):
            if value:
                store.put_secret(name, value)
            else:
                store.delete_secret(name)
        store.audit(
            "sftp_login_stored", detail=f"{target.address} {target.host_key.sha256_fingerprint}"
        )


def open_transport(rt: Runtime) -> SftpTransport:
    from fbstampli.sftp import SftpTransport

    target = load_target(rt.store, rt.settings)
    return SftpTransport.connect(target, timeout=rt.settings.sftp.timeout_seconds)


def host_key_from_known_hosts(path: Path, host: str, port: int) -> HostKey:
    """The first key for `[host]:port` (or `host` on 22) in an OpenSSH known_hosts file."""
    from fbstampli.sftp import HostKey

    wanted = host if port == 22 else f"[{host}]:{port}"
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and wanted in fields[0].split(","):
            return HostKey(fields[1], fields[2])
    raise ConfigError(f"{path} has no plain (unhashed) entry for {wanted}")


def describe(target: SftpTarget) -> str:
    return json.dumps(
        {"address": target.address, "fingerprint": target.host_key.sha256_fingerprint}
    )
