"""A webhook listener in a process of its own, so a test can measure its memory under attack.

`python -m tests.support.listener_process STATE_DIR VERIFIER ACCOUNT`: a new
encrypted state logged in to ACCOUNT with VERIFIER confirmed, a `Listener` with
the production limits on 127.0.0.1; prints its port, serves until stdin closes.
"""

import sys
from pathlib import Path

from fbstampli.clock import SystemClock
from fbstampli.listener import Listener
from fbstampli.store import Store, credentials
from fbstampli.store import events as hooks
from fbstampli.store.keys import KeySource, StateKey, new_key_hex


def main(state_dir: str, verifier: str, account: str) -> None:
    key = StateKey(new_key_hex(), KeySource.FILE)
    store = Store.create(Path(state_dir) / "state.db", key, SystemClock())
    with store.transaction():
        credentials.choose_business(store, credentials.Business(account, "1", "Test"))
    hooks.confirm_verifier(store, 7, verifier)
    listener = Listener(store, wake=lambda: None, port=0).start()
    sys.stdout.write(f"{listener.address[1]}\n")
    sys.stdout.flush()
    sys.stdin.read()
    listener.stop(grace=1.0)
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
