"""Everything one command run needs, opened once in a fixed order and closed on the way out.

Order matters: settings (so a bad config fails before anything else), the
run lock (so two runs never interleave), the key and the store, and only when
a command asks for them the FreshBooks client and the SFTP connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fbstampli.clock import Clock, SystemClock
from fbstampli.config import Settings, load_settings
from fbstampli.errors import ConfigError
from fbstampli.lock import run_lock
from fbstampli.options import Options
from fbstampli.paths import Paths

if TYPE_CHECKING:
    from fbstampli.stampli.template import Template
    from fbstampli.store import Store
    from fbstampli.store.keys import StateKey
    from fbstampli.sync.ports import BillSource, Renderer, Transport


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

    @property
    def env(self) -> Mapping[str, str]:
        return self.options.env

    def freshbooks(self) -> BillSource:
        """The FreshBooks client, logged in from the stored token (created on first use)."""
        if self._client is None:
            from fbstampli.freshbooks.session import open_client

            self._client = open_client(self)
        return self._client

    def renderer(self) -> Renderer:
        """The Stampli template in use, validated once per run."""
        if self._renderer is None:
            from fbstampli.stampli.renderer import TemplateRenderer

            template = self.settings.stampli.template
            self._renderer = TemplateRenderer.load(Path(template) if template else None)
        return self._renderer

    def template(self) -> Template:
        """The Stampli template itself, for parsing exports."""
        from fbstampli.stampli.renderer import TemplateRenderer

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
            from fbstampli.sftp_session import open_transport

            transport = open_transport(self)
            self._stack.callback(transport.close)
            self._transport = transport
        return self._transport


def require_home(paths: Paths) -> None:
    if not paths.state.exists():
        raise ConfigError(f"no fbstampli state in {paths.home}; run `fbstampli init` first")


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
            stack.enter_context(run_lock(paths.lock, wait_seconds=lock_wait))
        the_clock = clock or SystemClock()
        store, key = open_state(paths.state, options.env, the_clock, recover=lock)
        register_secret(key.hex)
        stack.callback(store.close)
        from fbstampli.sftp_session import with_stored_folders

        settings = with_stored_folders(settings, store)
        yield Runtime(options, settings, paths, store, key, the_clock, stack)
