"""An accounting firm's installation against the stand-ins: many FreshBooks businesses on one
sandbox login, one Stampli SFTP server, a business home each (for tests and bench/).

Homes are made through the services `business add` and `connect_home` use (init, auth login,
auth sftp), in this process, so 200 of them cost seconds rather than 200 CLI starts.
"""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fbstampli.installation import BusinessHome, Installation
from fbstampli.options import Options
from fbstampli.sandbox.fb_data import Business
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.sandbox import connect_home


def firm_accounts(names: list[str]) -> list[Business]:
    """One sandbox FreshBooks business per name, ids that never collide."""
    return [
        Business(f"F{index:05d}", 500_000 + index, f"{name.title()} Ltd.")
        for index, name in enumerate(names)
    ]


def add_businesses(
    folder: Path,
    freshbooks: FreshBooksSandbox,
    sftp: SftpServer,
    accounts: dict[str, Business],
    *,
    bills: int = 3,
) -> dict[str, Path]:
    """Each named business seeded in the sandbox, given a home under `folder`, logged in,
    pinned to `sftp` and listed in `folder`'s installation.toml; returns the homes."""
    installation = Installation(folder)
    homes: dict[str, Path] = {}
    for index, (name, account) in enumerate(accounts.items()):
        freshbooks.accounts[account.account_id].seed(
            vendors=2, bills=bills, payments=0, seed=index + 1
        )
        home = installation.new_home(name)
        connect_home(
            Options(home=home, env={}),
            freshbooks,
            sftp,
            business=name,
            business_id=account.business_id,
        )
        installation.record(BusinessHome(name, home, adopted=False))
        homes[name] = home
    return homes


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that takes connections and never answers: a FreshBooks that hangs.

    The kernel completes each handshake into the listen backlog and the request is sent;
    no byte ever comes back. Its URL is http://127.0.0.1:PORT.
    """
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(128)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


def point_at(home: Path, api_url: str) -> None:
    """Send one business's FreshBooks API requests to `api_url` (its login stays valid)."""
    config = home / "config.toml"
    lines = [
        f'api_url = "{api_url}"' if line.startswith("api_url") else line
        for line in config.read_text(encoding="utf-8").splitlines()
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
