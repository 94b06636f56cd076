"""The marker: Stampli's side remembers which state delivered to it, and how far.

A small JSON file in the inbound folder under a dot-name, `.fbstampli-<business>.json`
(Stampli's importer never reads dot-names, so the inbound guarantee holds; one per
business, in case two share an inbound). It holds the state's id (`store.identity`) and
the last batch that state delivered. Borg's repository id and its "cache is newer than
repository" check, and restic's repository id, are the models.

- Before the first file of a run is sent, the marker is read. A state with another id (new
  or emptied, after `init`) or whose last delivered batch is older than the marker's (a
  restored older backup) sends nothing: `StateNotMarkedError`, exit 4, saying the way on.
- A missing marker (a server cleaned up) is written again from the state: never taken as
  leave to re-send; the state alone says what is still to go.
- After each batch is committed delivered, the marker is rewritten (temporary dot-name,
  then rename). So it is never ahead of the state: a kill between the commit and the write
  leaves it behind, which the next run accepts and brings forward.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from fbstampli.clock import to_utc_text
from fbstampli.errors import RemoteError, RemoteUnavailableError, StateUnusableError
from fbstampli.store import Store
from fbstampli.store.credentials import account_id
from fbstampli.store.identity import last_delivered_batch, state_id, version_bound
from fbstampli.sync.ports import Transport

log = logging.getLogger(__name__)

MARKER_FORMAT = 1
MAX_MARKER_BYTES = 64 * 1024
_PREFIX, _SUFFIX = ".fbstampli-", ".json"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
WAY_ON = (
    "nothing was sent: restore the newest backup (`fbstampli state restore`), or take what "
    "Stampli already has as delivered with `fbstampli state adopt-remote`"
)


class StateNotMarkedError(StateUnusableError):
    """The state is not the one, or not as new as the one, that delivered to this inbound."""


@dataclass(frozen=True, slots=True)
class Marker:
    state_id: str
    last_batch: int
    # No version number sent to this inbound is higher (`store.identity.version_bound`): may
    # run ahead of what was sent, so it is written before the uploads; adopt-remote starts
    # its numbers above it.
    versions: int = field(default=0, compare=False)


def marker_name(business: str) -> str:
    """The marker's name for one business: a dot-name no consumer's pattern matches."""
    return f"{_PREFIX}{_UNSAFE.sub('-', business).strip('-') or 'business'}{_SUFFIX}"


def is_marker_name(name: str) -> bool:
    """The marker's name, or the temporary name it is written under first."""
    name = name.removesuffix(".part")
    return name.startswith(_PREFIX) and name.endswith(_SUFFIX)


def marker_bytes(marker: Marker, *, business: str, now: datetime) -> bytes:
    document = {
        "fbstampli_marker": MARKER_FORMAT,
        "business": business,
        "state_id": marker.state_id,
        "last_batch": marker.last_batch,
        "version_bound": marker.versions,
        "written_at": to_utc_text(now),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def parse_marker(data: bytes) -> Marker | None:
    """The marker in `data`, or None when it is not one of ours (garbled, another format)."""
    try:
        document = json.loads(data.decode("utf-8"))
        found = Marker(
            str(document["state_id"]),
            int(document["last_batch"]),
            int(document.get("version_bound", 0)),
        )
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(document, dict) or document.get("fbstampli_marker") != MARKER_FORMAT:
        return None
    return found


def refusal(state: Marker, remote: Marker | None, where: str) -> str | None:
    """Why this state must not deliver where the marker `remote` lies, or None if it may."""
    if remote is None:
        return None
    if remote.state_id != state.state_id:
        return (
            f"this state (id {state.state_id}) is not the one that delivered to Stampli: "
            f"{where} names state {remote.state_id}, which sent up to batch "
            f"{remote.last_batch} (a new or emptied state, after `fbstampli init`?); {WAY_ON}"
        )
    if remote.last_batch > state.last_batch:
        return (
            f"this state is older than what Stampli received: the last batch it delivered is "
            f"{state.last_batch}, but {where} says batch {remote.last_batch} arrived (a backup "
            f"restored over a newer state?); {WAY_ON}"
        )
    return None


@dataclass(slots=True)
class MarkerGuard:
    """One delivery run's marker: checked before its first upload, moved after each batch."""

    store: Store
    directory: str
    business: str
    now: datetime
    checked: bool = False
    written: Marker | None = None

    @property
    def name(self) -> str:
        return marker_name(account_id(self.store) or self.business)  # the business's own id

    def state(self) -> Marker:
        store = self.store
        return Marker(state_id(store), last_delivered_batch(store), version_bound(store))

    def before_upload(self, transport: Transport) -> None:
        """Refuse a state the marker does not accept; write a missing or lagging marker."""
        if self.checked:
            return
        name = self.name
        data = transport.read_file(self.directory, name, max_bytes=MAX_MARKER_BYTES)
        remote = None if data is None else parse_marker(data)
        if data is not None and remote is None:
            log.warning(
                "%s/%s is not a marker fbstampli can read; writing it again", self.directory, name
            )
        state = self.state()
        why = refusal(state, remote, f"the marker {self.directory}/{name} on the SFTP server")
        if why is not None:
            raise StateNotMarkedError(why)
        if remote is None or remote != state or remote.versions < state.versions:
            self._write(transport, state)
        self.written = state
        self.checked = True

    def after_delivered(self, transport: Transport) -> None:
        """The state committed another batch: the marker follows (a failure only lags it)."""
        state = self.state()
        if state == self.written:
            return
        try:
            self._write(transport, state)
        except (RemoteError, RemoteUnavailableError) as error:
            log.info(
                "could not move the marker to batch %d (%s); the next run will",
                state.last_batch,
                error,
            )
            return
        self.written = state

    def _write(self, transport: Transport, state: Marker) -> None:
        data = marker_bytes(state, business=account_id(self.store) or self.business, now=self.now)
        transport.replace_file(self.directory, self.name, data)
        log.info(
            "marker %s/%s: state %s, batch %d",
            self.directory,
            self.name,
            state.state_id,
            state.last_batch,
        )


def write_marker(
    store: Store, transport: Transport, directory: str, business: str, now: datetime
) -> Marker:
    """Write the marker from the state as it is, whatever the server holds (adopt-remote)."""
    guard = MarkerGuard(store, directory, business, now)
    state = guard.state()
    guard._write(transport, state)
    return state


def read_marker(store: Store, transport: Transport, directory: str, business: str) -> Marker | None:
    """The marker on the server for this state's business, None when missing or unreadable."""
    name = marker_name(account_id(store) or business)
    data = transport.read_file(directory, name, max_bytes=MAX_MARKER_BYTES)
    return None if data is None else parse_marker(data)
