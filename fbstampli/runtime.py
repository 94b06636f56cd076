"""Everything one command run needs, opened once in a fixed order and closed on the way out.

Order matters: settings (so a bad config fails before anything else), the
run lock (so two runs never interleave), the key and the store, and only when
a command asks for them the FreshBooks client and the SFTP connection, which
the factories at the bottom open from the credentials the store holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fbstampli.clock import Clock, SystemClock
from fbstampli.config import Settings, load_settings
from fbstampli.errors import AuthRequiredError, ConfigError, LockHeldError
from fbstampli.lock import run_lock
from fbstampli.options import Options
from fbstampli.paths import Paths

if TYPE_CHECKING:
    from datetime import datetime

    from fbstampli.freshbooks.client import FreshBooksClient
    from fbstampli.models.behaviour import Learnt
    from fbstampli.sftp import SftpTarget, SftpTransport
    from fbstampli.stampli.template import Template
    from fbstampli.store import Store
    from fbstampli.store.credentials import SftpLogin
    from fbstampli.store.keys import StateKey
    from fbstampli.sync.ports import BillSource, Renderer, Transport

log = logging.getLogger(__name__)


def load_options_settings(options: Options, flags: Mapping[str, object] | None = None) -> Settings:
    return load_settings(flags or {}, options.env, options.config_path())


@dataclass(slots=True)
class Runtime:
    options: Options
    settings: Settings
    paths: Paths
    store: Store
    key: StateKey
    clock: Clock
    _stack: ExitStack
    _transport: Transport | None = None
    _client: BillSource | None = None
    _renderer: Renderer | None = None
    # Told of each page FreshBooks lists, for the progress bars (None: nobody is watching).
    on_page: Callable[[Any], None] | None = None

    @property
    def env(self) -> Mapping[str, str]:
        return self.options.env

    def freshbooks(self) -> BillSource:
        """The FreshBooks client, logged in from the stored token (created on first use)."""
        if self._client is None:
            self._client = open_client(self)
        return self._client

    def renderer(self) -> Renderer:
        """The Stampli template in use, validated once per run."""
        if self._renderer is None:
            from fbstampli.stampli.render import TemplateRenderer

            template = self.settings.stampli.template
            self._renderer = TemplateRenderer.load(Path(template) if template else None)
        return self._renderer

    def template(self) -> Template:
        """The Stampli template itself, for parsing exports."""
        from fbstampli.stampli.render import TemplateRenderer

        renderer = self.renderer()
        if not isinstance(renderer, TemplateRenderer):
            raise TypeError("this runtime's renderer has no template")
        return renderer.template

    def transport(self) -> Transport:
        """The run's SFTP connection, opened on first use and again once it was closed.

        An upload that fails closes its connection so that the next try starts afresh
        (`sync.connection.Connection`); handing that closed one out again would fail every
        later try in the run, and the pull after them.
        """
        if self._transport is None or self._transport.closed:
            transport = open_transport(self)
            self._stack.callback(transport.close)
            self._transport = transport
        return self._transport


def require_home(paths: Paths) -> None:
    if not paths.state.exists():
        raise ConfigError(
            f"no fbstampli state in {paths.home}: point --home or FBSTAMPLI_HOME at your home "
            "(a new terminal or cron does not have the export of another), or create one "
            "there with `fbstampli init`"
        )


@contextmanager
def open_runtime(
    options: Options,
    *,
    lock: bool = True,
    lock_wait: float = 0.0,
    clock: Clock | None = None,
) -> Iterator[Runtime]:
    """Open settings, lock, key and store for one command; close them all afterwards."""
    from fbstampli.logs import register_secret
    from fbstampli.store import open_state

    settings = load_options_settings(options)
    register_secret(settings.freshbooks.client_secret)
    paths = options.paths()
    require_home(paths)
    with ExitStack() as stack:
        if lock:
            try:
                stack.enter_context(run_lock(paths.lock, wait_seconds=lock_wait))
            except LockHeldError as error:  # under -q: silent as long as any transient condition
                error.quiet_seconds = settings.monitoring.quiet_transient_hours * 3600
                raise
        the_clock = clock or SystemClock()
        store, key = open_state(paths.state, options.env, the_clock, recover=lock)
        register_secret(key.hex)
        stack.callback(store.close)
        settings = with_stored_folders(settings, store)
        yield Runtime(options, settings, paths, store, key, the_clock, stack)


# -- factories: the outside world, opened from the stored credentials --------------------------


def require_account(store: Store) -> str:
    """The chosen business's account id; before `auth login` there is none to sync."""
    from fbstampli.freshbooks.oauth import LOGIN_HINT
    from fbstampli.store.credentials import account_id

    account = account_id(store)
    if not account:
        raise AuthRequiredError(f"no FreshBooks business chosen yet; {LOGIN_HINT}")
    return account


def open_client(rt: Runtime, *, session: Any = None) -> FreshBooksClient:
    """The FreshBooks client, its token pair kept in (and refreshed into) the state, and what
    FreshBooks was seen to do where its documentation is silent (`models/behaviour.py`).

    `session` is a `requests.Session` to send through (one with hooks, for a report).
    """
    from fbstampli.freshbooks.account import require_app
    from fbstampli.freshbooks.client import FreshBooksClient
    from fbstampli.freshbooks.oauth import TokenManager
    from fbstampli.store.credentials import StateTokenStore

    settings = rt.settings.freshbooks
    require_app(settings)
    account = require_account(rt.store)
    from fbstampli.lock import holds_run_lock

    manager = TokenManager(
        settings,
        StateTokenStore(rt.store),
        now=rt.clock.now,
        may_refresh=lambda: holds_run_lock(rt.paths.lock),  # single-use: only under the lock
    )

    def on_page(progress: Any) -> None:  # read at each page: a stage may stop listening
        if rt.on_page is not None:
            rt.on_page(progress)

    client = FreshBooksClient(
        settings,
        manager,
        account,
        session=session,
        sleep=rt.clock.sleep,
        on_page=on_page,
        learnt=stored_learnt(rt.store, rt.clock.now),
    )
    # Before the store closes and the run lock is let go: what the client learnt is written
    # here, in the command's own thread, not by the client in the middle of a listing.
    rt._stack.callback(store_lessons, rt.store, client)
    return client


def stored_learnt(store: Store, now: Callable[[], datetime]) -> Learnt:
    """What FreshBooks was seen to do, as stored; new conclusions come back by `store_lessons`."""
    from fbstampli.models.behaviour import Learnt
    from fbstampli.store.api_facts import load_facts

    return Learnt(load_facts(store), now=now)


def store_lessons(store: Store, client: FreshBooksClient) -> None:
    """Commit what the client concluded of FreshBooks' behaviour; lost, it is learnt again."""
    from fbstampli.errors import FbstampliError
    from fbstampli.logs import FILE_ONLY
    from fbstampli.store.api_facts import save_fact

    try:
        for name, fact in client.lessons().items():
            save_fact(store, name, fact)
    except FbstampliError as error:  # the command's own outcome stands; the next run rechecks
        # Only in the log file: the command's own line already says what is wrong with the
        # state (a damaged one fails both), and cron must get that one line, not two.
        log.warning("could not store what FreshBooks was seen to do: %s", error, extra=FILE_ONLY)


def with_stored_folders(settings: Settings, store: Store) -> Settings:
    """Folders given to `auth sftp --inbound/--outbound` belong to that login and win over
    the config file; a login stored without them leaves the config in charge."""
    from fbstampli.store.credentials import sftp_description

    described = sftp_description(store)
    if not described:
        return settings
    stampli = replace(
        settings.stampli,
        inbound_dir=described.get("inbound") or settings.stampli.inbound_dir,
        outbound_dir=described.get("outbound") or settings.stampli.outbound_dir,
    )
    return replace(settings, stampli=stampli)


def sftp_target(login: SftpLogin, settings: Settings) -> SftpTarget:
    """Where and as whom to connect: the stored login, in the folders the settings name."""
    from fbstampli.sftp import HostKey, SftpTarget

    return SftpTarget(
        host=login.host,
        port=login.port,
        username=login.username,
        host_key=HostKey(login.host_key_type, login.host_key_base64),
        password=login.password,
        private_key=login.private_key,
        passphrase=login.passphrase,
        inbound_dir=settings.stampli.inbound_dir,
        outbound_dir=settings.stampli.outbound_dir,
    )


def open_transport(rt: Runtime) -> SftpTransport:
    """A connection to Stampli's SFTP server that accepts only the pinned host key."""
    from fbstampli.sftp import SftpTransport
    from fbstampli.store.credentials import load_sftp_login

    login = load_sftp_login(rt.store)
    if login is None:
        raise ConfigError("no Stampli SFTP login stored; run `fbstampli auth sftp`")
    target = sftp_target(login, rt.settings)
    return SftpTransport.connect(target, timeout=rt.settings.sftp.timeout_seconds)
