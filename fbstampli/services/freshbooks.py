"""FreshBooks login and webhook callback registration."""

from __future__ import annotations

from typing import Any

from fbstampli.report import RunReport
from fbstampli.runtime import Options
from fbstampli.services.setup import not_built


def auth_login(
    options: Options, *, code: str | None, business: int | None, open_browser: bool
) -> RunReport:
    return not_built("auth login")  # type: ignore[no-any-return]


def auth_status(options: Options) -> dict[str, Any]:
    return not_built("auth status")  # type: ignore[no-any-return]


def auth_logout(options: Options) -> RunReport:
    return not_built("auth logout")  # type: ignore[no-any-return]


def webhooks_register(options: Options, *, url: str) -> RunReport:
    return not_built("webhooks register")  # type: ignore[no-any-return]


def webhooks_list(options: Options) -> list[dict[str, Any]]:
    return not_built("webhooks list")  # type: ignore[no-any-return]


def webhooks_delete(options: Options, callback_id: int) -> RunReport:
    return not_built("webhooks delete")  # type: ignore[no-any-return]


def webhooks_verify(
    options: Options, callback_id: int, *, verifier: str | None, resend: bool
) -> RunReport:
    return not_built("webhooks verify")  # type: ignore[no-any-return]
