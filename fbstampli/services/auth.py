"""Logging in: FreshBooks (`auth login|status|logout`) and Stampli's SFTP (`auth sftp`).

The interactive parts (showing the authorize URL, reading the pasted
redirect, choosing a business, confirming a host key) are callables the CLI
passes in, so these functions never print and scripts can drive them with
`--code`/`--business`/`--accept-host-key`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fbstampli.errors import AuthRequiredError, ConfigError, HostKeyError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime

if TYPE_CHECKING:
    from fbstampli.sftp import HostKey, SftpTarget

AskRedirect = Callable[[str], str]
ChooseBusiness = Callable[[Sequence[Any]], int]


def auth_login(
    options: Options,
    *,
    code: str | None,
    business: int | None,
    ask_redirect: AskRedirect | None = None,
    choose_business: ChooseBusiness | None = None,
) -> RunReport:
    """Exchange an authorization code, then pick and store the business to sync."""
    from fbstampli.freshbooks.account import log_in, require_app
    from fbstampli.freshbooks.oauth import authorize_url
    from fbstampli.store import credentials

    report = RunReport("auth login")
    with open_runtime(options) as rt:
        settings = rt.settings.freshbooks
        require_app(settings)
        state: str | None = None
        if code is None:
            if ask_redirect is None:
                raise ConfigError("auth login needs a terminal to paste into, or --code CODE")
            state = secrets.token_urlsafe(16)
            code = ask_redirect(authorize_url(settings, state))
        tokens = credentials.StateTokenStore(rt.store)
        answer = log_in(settings, tokens, code, state, now=rt.clock.now, sleep=rt.clock.sleep)
        memberships = [m for m in answer if m.account_id]
        chosen = _choose(memberships, business, choose_business)
        with rt.store.transaction():
            credentials.choose_business(
                rt.store,
                credentials.Business(chosen.account_id, str(chosen.business_id), chosen.name),
            )
            rt.store.audit("logged_in", detail=f"business {chosen.business_id} ({chosen.name})")
        report.summary.append(
            f"Logged in to FreshBooks; syncing {chosen.name or 'the business'} "
            f"(business {chosen.business_id}). Next: `fbstampli auth sftp`."
        )
        report.add("logged_in")
    return report


def _choose(memberships: Sequence[Any], wanted: int | None, choose: ChooseBusiness | None) -> Any:
    if not memberships:
        raise AuthRequiredError(
            "this FreshBooks user belongs to no business with an accounting account; "
            "log in as a user of the business whose bills you want to sync"
        )
    if wanted is not None:
        for membership in memberships:
            if membership.business_id == wanted:
                return membership
        known = ", ".join(f"{m.business_id} ({m.name})" for m in memberships)
        raise ConfigError(f"--business {wanted} is not one of yours: {known}")
    if len(memberships) == 1:
        return memberships[0]
    if choose is None:
        known = ", ".join(f"{m.business_id} ({m.name})" for m in memberships)
        raise ConfigError(f"you belong to several businesses; choose one with --business: {known}")
    picked = choose(memberships)
    return _choose(memberships, picked, None)


def auth_status(options: Options) -> dict[str, Any]:
    """What the login is, never the token itself."""
    from fbstampli.store.credentials import login_summary

    with open_runtime(options, lock=False) as rt:
        return login_summary(rt.store, rt.clock.now())


def auth_logout(options: Options) -> RunReport:
    """Revoke at FreshBooks when it answers; forget locally whatever happens."""
    from fbstampli.freshbooks.account import log_out
    from fbstampli.store.credentials import StateTokenStore, forget_business

    report = RunReport("auth logout")
    with open_runtime(options) as rt:
        tokens = StateTokenStore(rt.store)
        report.notes.append(log_out(rt.settings.freshbooks, tokens))
        tokens.forget()
        with rt.store.transaction():
            forget_business(rt.store)
            rt.store.audit("logged_out")
        report.add("logged_out")
        report.summary.append("Logged out of FreshBooks; `fbstampli auth login` to log in again.")
    return report


# ---- Stampli's SFTP ----------------------------------------------------------------------------

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
    from fbstampli.sftp import SftpTarget
    from fbstampli.store.credentials import SftpLogin, save_sftp_login

    _require_secret(password, private_key)
    report = RunReport("auth sftp")
    with open_runtime(options) as rt:
        timeout = rt.settings.sftp.timeout_seconds
        host_key = _host_key(rt, host, port, accept_host_key, known_hosts, confirm_key)
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
        _prove_login(target, timeout, private_key=bool(private_key))
        save_sftp_login(
            rt.store,
            SftpLogin(
                host=target.host,
                port=target.port,
                username=target.username,
                host_key_type=host_key.key_type,
                host_key_base64=host_key.base64,
                host_key_fingerprint=host_key.sha256_fingerprint,
                password=password,
                private_key=private_key,
                passphrase=passphrase,
                inbound=inbound,
                outbound=outbound,
            ),
        )
        report.summary.append(
            f"Stored the SFTP login for {target.address} and pinned its host key "
            f"{host_key.key_type} {host_key.sha256_fingerprint}. Next: `fbstampli doctor`."
        )
        report.add("stored")
    return report


def _require_secret(password: str, private_key: str) -> None:
    if not password and not private_key:
        raise ConfigError(
            "no password or key was given: pipe the password to --password-stdin "
            "(it read an empty line), or use --key-file"
        )


def _host_key(
    rt: Runtime,
    host: str,
    port: int,
    accept_host_key: str | None,
    known_hosts: Path | None,
    confirm_key: ConfirmKey | None,
) -> HostKey:
    """The host key to pin: from known_hosts, else the one offered, if the person accepts it
    (by --accept-host-key, by confirming, or because it is already pinned)."""
    from fbstampli.sftp import fetch_host_key

    if known_hosts is not None:
        return host_key_from_known_hosts(known_hosts, host, port)
    host_key = fetch_host_key(host, port, rt.settings.sftp.timeout_seconds)
    offered = host_key.sha256_fingerprint
    pinned = _pinned_fingerprint(rt, host, port)
    if accept_host_key is None and pinned == offered:
        pass  # the same server with the key already pinned: a new password keeps it
    elif accept_host_key is not None:
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
    return host_key


def _prove_login(target: SftpTarget, timeout: float, *, private_key: bool) -> None:
    """Log in and list both folders; a refused login says which secret to check."""
    from fbstampli.sftp import SftpLoginError, SftpTransport

    try:
        with SftpTransport.connect(target, timeout=timeout) as transport:
            transport.list_files(target.inbound_dir)
            transport.list_files(target.outbound_dir)
    except SftpLoginError as error:
        if "refused" not in str(error):
            raise
        what = (
            "key (is its public half installed for that user?)"
            if private_key
            else ("password (case matters; --password-stdin reads the first line only)")
        )
        raise SftpLoginError(
            f"{target.address} refused user {target.username!r} with this {what}; check both with "
            "Stampli and run this again; nothing was stored"
        ) from None


def _pinned_fingerprint(rt: Runtime, host: str, port: int) -> str | None:
    """The fingerprint already pinned for this host and port, if a login for it is stored."""
    from fbstampli.store.credentials import sftp_description

    described = sftp_description(rt.store)
    if described is None or (described["host"], int(described["port"])) != (host, port):
        return None
    return str(described.get("host_key_fingerprint") or "") or None


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
