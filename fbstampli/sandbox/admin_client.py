"""Talk to a running FreshBooks sandbox's admin face (`fb_admin.py`) from another process.

stdlib `http.client` on purpose: only `freshbooks/` speaks requests, and this is a
local, plain-HTTP stand-in. Every failure is a `ConfigError` that says what to do.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

from fbstampli.errors import ConfigError

TIMEOUT = 30.0  # a change waits for its webhooks (5 s each at most) before it answers


def call_admin(
    url: str, method: str, path: str, fields: dict[str, Any] | None = None, account: str = ""
) -> dict[str, Any]:
    """The sandbox's JSON answer to `method path`, or a `ConfigError` naming the fix."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.netloc:
        raise ConfigError(
            f"--url {url}: give the sandbox's address as it printed it, e.g. http://127.0.0.1:8765"
        )
    target = path + (f"?account={quote(account)}" if account else "")
    body = json.dumps(fields or {}).encode("utf-8")
    connection = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT)
    try:
        connection.request(method, target, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        status, raw = answer.status, answer.read()
    except OSError as error:
        raise ConfigError(
            f"cannot reach the FreshBooks sandbox at {url} ({error.strerror or error}); start "
            "`fbstampli sandbox freshbooks` in another terminal, or give the --url it printed"
        ) from None
    finally:
        connection.close()
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ConfigError(
            f"{url} did not answer as a FreshBooks sandbox; give the --url it printed"
        )
    if status != 200:
        message = str(document.get("message") or f"HTTP {status}")
        if status == 404 and message.startswith("No route"):
            message = (
                "this is not a FreshBooks sandbox with an admin face; give the --url it printed"
            )
        raise ConfigError(f"the sandbox refused: {message}")
    return document
