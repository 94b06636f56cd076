"""serve-webhook: the optional FreshBooks webhook listener."""

from __future__ import annotations

from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.services.setup import not_built


def serve_webhook(options: Options, *, host: str | None, port: int | None) -> RunReport:
    return not_built("serve-webhook")  # type: ignore[no-any-return]
