"""The SFTP connection of one run, shared by push and pull.

A transfer cut halfway leaves its connection useless; the journals of both
directions make a second try safe, so each asks for a fresh connection and
resumes from its journal rather than ending the run at the first drop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fbstampli.errors import RemoteError, RemoteUnavailableError
from fbstampli.sync.ports import Transport

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Connection:
    """Opened on first need, reopened after a drop."""

    factory: Callable[[], Transport]
    current: Transport | None = None

    def get(self) -> Transport:
        if self.current is None:
            self.current = self.factory()
        return self.current

    def once_more_if_lost(self, step: Callable[[Transport], T], what: str) -> T:
        """`step` on this connection; lost mid-way, it runs once more on a fresh one.

        Only for a step whose journal or a look at the server makes a second run safe.
        Lost twice, the error goes up and the next run resumes.
        """
        try:
            return step(self.get())
        except RemoteUnavailableError as error:
            log.info("lost the connection while %s (%s); trying once more", what, error)
            self.drop()
        return step(self.get())

    def drop(self) -> None:
        if self.current is not None:
            try:
                self.current.close()
            except (RemoteError, RemoteUnavailableError):
                log.debug("closing a broken SFTP connection failed", exc_info=True)
            self.current = None
