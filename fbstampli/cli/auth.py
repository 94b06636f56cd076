"""`fbstampli auth …`: FreshBooks OAuth and the Stampli SFTP login."""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from fbstampli.cli.app import (
    MAX_ID,
    MAX_PORT,
    FriendlyCommand,
    GroupedHelp,
    JsonFlag,
    app,
    examples,
    finish,
    in_range,
    options_of,
)

auth_app = typer.Typer(
    help="Log in to FreshBooks and store the Stampli SFTP login.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=GroupedHelp,
)
app.add_typer(auth_app, name="auth")


# Names a browser never needs and must not inherit: our key, the app's secret, any token.
_PRIVATE_ENV = ("FBSTAMPLI_", "FRESHBOOKS_")
_PRIVATE_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "KEY", "CREDENTIAL")


def browser_env(env: dict[str, str]) -> dict[str, str]:
    """`env` without anything secret: the browser is a big program we do not control."""
    return {
        name: value
        for name, value in env.items()
        if not name.upper().startswith(_PRIVATE_ENV)
        and not any(word in name.upper() for word in _PRIVATE_WORDS)
    }


def launch_browser(url: str) -> None:
    """Open `url` in the desktop's browser with a cleaned environment; never fails the login."""
    import contextlib
    import os
    import subprocess

    opener = "open" if sys.platform == "darwin" else "xdg-open"
    # No opener here is fine: the URL is printed above for the user to open.
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [opener, url],
            env=browser_env(dict(os.environ)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def secret_from_stdin(option: str) -> str:
    """One line of stdin for an option given as `-`, so a secret stays out of argv."""
    from fbstampli.errors import ConfigError

    text = sys.stdin.readline().strip()
    if not text:
        raise ConfigError(f"{option} - reads the value from stdin, but stdin gave none")
    return text


@auth_app.command(
    "login",
    cls=FriendlyCommand,
    short_help="Log in to FreshBooks and choose the business.",
    epilog=examples(
        "fbstampli auth login",
        "fbstampli auth login --code 'https://localhost:8765/callback?code=…'",
    ),
)
def login(
    ctx: typer.Context,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="The whole redirected URL (or the bare code), for scripts; give - to read it "
            "from stdin, which keeps it out of ps and shell history. A bare code skips the "
            "OAuth state check, so give one only that you obtained yourself.",
        ),
    ] = None,
    business: Annotated[
        int | None,
        typer.Option(
            "--business",
            metavar="ID",
            callback=in_range(1, MAX_ID),
            help="FreshBooks business id to use when you belong to several.",
        ),
    ] = None,
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="Print the authorization URL; do not open a browser."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Authorize fbstampli on FreshBooks (authorization code flow) and choose the business."""
    from fbstampli.cli.text import clean
    from fbstampli.services import auth as services

    interactive = sys.stdin.isatty()

    def ask_redirect(url: str) -> str:
        sys.stderr.write(
            "Open this URL, approve fbstampli, then paste the address your browser lands on:\n"
            f"  {url}\n"
        )
        if not no_browser:
            launch_browser(url)
        return str(typer.prompt("Redirected URL", err=True))

    def choose_business(memberships: Sequence[Any]) -> int:
        for membership in memberships:
            sys.stderr.write(f"  {membership.business_id}  {clean(membership.name)}\n")
        chosen: int = typer.prompt("Business id", type=int, err=True)
        return chosen

    report = services.auth_login(
        options_of(ctx),
        code=secret_from_stdin("--code") if code == "-" else code,
        business=business,
        ask_redirect=ask_redirect if interactive else None,
        choose_business=choose_business if interactive else None,
    )
    finish(ctx, report, as_json=as_json)


@auth_app.command(
    "status",
    cls=FriendlyCommand,
    short_help="Who is logged in to FreshBooks, and until when.",
    epilog=examples("fbstampli auth status"),
)
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Who is logged in, which business, and when the access token expires (never the token)."""
    from fbstampli.cli import output
    from fbstampli.services import auth as services

    document = services.auth_status(options_of(ctx))
    output.show_mapping("FreshBooks login", document, as_json=as_json)
    if not document.get("logged_in"):  # as `gh auth status`: a script can test it
        if not as_json:
            output.problem_line(
                "not logged in to FreshBooks: "
                + str(document.get("fix") or "run `fbstampli auth login`")
            )
        raise typer.Exit(1)


@auth_app.command(
    "logout",
    cls=FriendlyCommand,
    short_help="Revoke and forget the FreshBooks login.",
    epilog=examples("fbstampli auth logout"),
)
def logout(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Revoke the FreshBooks token and forget it."""
    from fbstampli.services import auth as services

    finish(ctx, services.auth_logout(options_of(ctx)), as_json=as_json)


def _confirm_key(description: str) -> bool:
    return bool(typer.confirm(f"{description}. Pin it?", err=True))


def _secrets(password_stdin: bool, key_file: Path | None) -> tuple[str, str, str]:
    """(password, private key, passphrase) as given: piped, from the key file, or asked for."""
    from fbstampli.services import auth as services

    password = private_key = passphrase = ""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif key_file is not None:
        try:
            private_key = key_file.read_text()
        except OSError as error:
            raise typer.BadParameter(f"cannot read {key_file}: {error.strerror}") from None
        if services.key_needs_passphrase(private_key, shown_as=str(key_file)):
            if sys.stdin.isatty():
                passphrase = str(typer.prompt("Key passphrase", hide_input=True, err=True))
            else:
                passphrase = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = str(typer.prompt("SFTP password", hide_input=True, err=True))
    return password, private_key, passphrase


@auth_app.command(
    "sftp",
    cls=FriendlyCommand,
    short_help="Store the Stampli SFTP login and pin its host key.",
    epilog=examples(
        "fbstampli auth sftp --host sftp.stampli.com --username acme",
        "pass stampli | fbstampli auth sftp --host H --username U --accept-host-key SHA256:… "
        "--password-stdin",
    ),
)
def sftp(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Stampli SFTP host name.")],
    username: Annotated[str, typer.Option("--username", help="SFTP user name.")],
    port: Annotated[
        int,
        typer.Option("--port", metavar="PORT", callback=in_range(1, MAX_PORT), help="SFTP port."),
    ] = 22,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from standard input (on a terminal, without this or "
            "--key-file, it is asked for).",
        ),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="Private key file (its passphrase is asked for)."),
    ] = None,
    inbound: Annotated[
        str | None, typer.Option("--inbound", help="Remote folder Stampli picks our files up from.")
    ] = None,
    outbound: Annotated[
        str | None, typer.Option("--outbound", help="Remote folder Stampli leaves its exports in.")
    ] = None,
    accept_host_key: Annotated[
        str | None,
        typer.Option(
            "--accept-host-key",
            help="Pin the host key with this SHA256 fingerprint, unasked ('any': as offered).",
        ),
    ] = None,
    known_hosts: Annotated[
        Path | None,
        typer.Option("--known-hosts", help="Take the host key from this known_hosts file."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store the Stampli SFTP login in the encrypted state and pin the server's host key."""
    from fbstampli.services import auth as services

    password, private_key, passphrase = _secrets(password_stdin, key_file)

    report = services.auth_sftp(
        options_of(ctx),
        host=host,
        port=port,
        username=username,
        password=password,
        private_key=private_key,
        passphrase=passphrase,
        inbound=inbound,
        outbound=outbound,
        accept_host_key=accept_host_key,
        known_hosts=known_hosts,
        confirm_key=_confirm_key if sys.stdin.isatty() else None,
    )
    finish(ctx, report, as_json=as_json)
