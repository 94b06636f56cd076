"""The Stampli side: the SFTP login and template checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fbstampli.errors import ConfigError, HostKeyError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import open_runtime

ConfirmKey = Callable[[str], bool]


def key_needs_passphrase(private_key: str, shown_as: str) -> bool:
    """Whether to ask for a passphrase; text that is no usable private key is refused here,
    before any connection, as a usage error naming the file (`shown_as`)."""
    from fbstampli.sftp import private_key_kind

    kind = private_key_kind(private_key)
    if kind == "unreadable":
        raise ConfigError(f"--key-file {shown_as} is not an Ed25519, ECDSA or RSA private key")
    return kind == "encrypted"


def auth_sftp(
    options: Options,
    *,
    host: str,
    port: int,
    username: str,
    password: str = "",
    private_key: str = "",
    passphrase: str = "",
    inbound: str | None = None,
    outbound: str | None = None,
    accept_host_key: str | None = None,
    known_hosts: Path | None = None,
    confirm_key: ConfirmKey | None = None,
) -> RunReport:
    """Pin the host key, prove the login and both folders work, then store it all."""
    from fbstampli.errors import ConfigError
    from fbstampli.sftp import SftpTarget, SftpTransport, fetch_host_key
    from fbstampli.sftp_session import host_key_from_known_hosts, save_target

    if not password and not private_key:
        raise ConfigError(
            "no password or key was given: pipe the password to --password-stdin "
            "(it read an empty line), or use --key-file"
        )
    report = RunReport("auth sftp")
    with open_runtime(options) as rt:
        timeout = rt.settings.sftp.timeout_seconds
        if known_hosts is not None:
            host_key = host_key_from_known_hosts(known_hosts, host, port)
        else:
            host_key = fetch_host_key(host, port, timeout)
            offered = host_key.sha256_fingerprint
            if accept_host_key is not None:
                if accept_host_key not in ("any", offered):
                    raise HostKeyError(
                        f"{host}:{port} offers host key {offered}, not {accept_host_key}; "
                        "check the fingerprint with Stampli before pinning it"
                    )
            elif confirm_key is None or not confirm_key(
                f"{host}:{port} host key is {host_key.key_type} {offered}"
            ):
                raise HostKeyError(
                    f"host key {offered} of {host}:{port} not accepted; confirm it with Stampli, "
                    f"then pass --accept-host-key {offered}"
                )
        target = SftpTarget(
            host=host,
            port=port,
            username=username,
            host_key=host_key,
            password=password,
            private_key=private_key,
            passphrase=passphrase,
            inbound_dir=inbound or rt.settings.stampli.inbound_dir,
            outbound_dir=outbound or rt.settings.stampli.outbound_dir,
        )
        with SftpTransport.connect(target, timeout=timeout) as transport:
            transport.list_files(target.inbound_dir)
            transport.list_files(target.outbound_dir)
        save_target(rt.store, target, inbound=inbound, outbound=outbound)
        report.notes.append(
            f"stored {target.address}; pinned {host_key.key_type} {host_key.sha256_fingerprint}"
        )
        report.add("stored")
    return report


def template_check(file: Path) -> RunReport:
    from fbstampli.stampli.template import load_template

    load_template(file)
    report = RunReport("template check")
    report.notes.append(f"{file} is a valid Stampli template")
    report.add("valid")
    return report
