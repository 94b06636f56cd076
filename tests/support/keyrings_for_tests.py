"""Keyring backends for tests, loaded by keyring itself through PYTHON_KEYRING_BACKEND.

`FileKeyring` keeps passwords in a folder named by FBSTAMPLI_TEST_KEYRING_DIR;
`HangingKeyring` never answers, like a locked Secret Service collection.
"""

import json
import os
import time
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _file(self) -> Path:
        return Path(os.environ["FBSTAMPLI_TEST_KEYRING_DIR"]) / "keyring.json"

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self._file().read_text())
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._file().write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service}/{username}", None)
        self._file().write_text(json.dumps(data))


class HangingKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        time.sleep(3600)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        time.sleep(3600)

    def delete_password(self, service: str, username: str) -> None:
        time.sleep(3600)
