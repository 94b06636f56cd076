"""FreshBooks login and webhook callback registration.

The interactive parts (showing the authorize URL, reading the pasted
redirect, choosing a business) are callables the CLI passes in, so these
functions never print and scripts can drive them with `--code`/`--business`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from fbstampli.errors import AuthRequiredError, ConfigError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import open_runtime
from fbstampli.services.setup import not_built

AskRedirect = Callable[[str], str]
ChooseBusiness = Callable[[Sequence[Any]], int]


def auth_login(
    options: Options,
    *,
    code: str | None,
    business: int | None,
    ask_redirect: AskRedirect | None = None,
    choose_business: ChooseBusiness | None = None,
) -> RunReport:
    """Exchange an authorization code, then pick and store the business to sync."""
    from fbstampli.freshbooks.oauth import authorize_url
    from fbstampli.freshbooks.session import log_in, require_app

    report = RunReport("auth login")
    with open_runtime(options) as rt:
        settings = rt.settings.freshbooks
        require_app(settings)
        state: str | None = None
        if code is None:
            if ask_redirect is None:
                raise ConfigError("auth login needs a terminal to paste into, or --code CODE")
            state = secrets.token_urlsafe(16)
            code = ask_redirect(authorize_url(settings, state))
        memberships = [m for m in log_in(rt, code, state) if m.account_id]
        chosen = _choose(memberships, business, choose_business)
        with rt.store.transaction():
            rt.store.put_value("freshbooks.account_id", chosen.account_id)
            rt.store.put_value("freshbooks.business_id", str(chosen.business_id))
            rt.store.put_value("freshbooks.business_name", chosen.name)
            rt.store.audit("logged_in", detail=f"business {chosen.business_id} ({chosen.name})")
        report.notes.append(f"logged in; syncing business {chosen.business_id} {chosen.name!r}")
        report.add("logged_in")
    return report


def _choose(memberships: Sequence[Any], wanted: int | None, choose: ChooseBusiness | None) -> Any:
    if not memberships:
        raise AuthRequiredError(
            "this FreshBooks user belongs to no business with an accounting account; "
            "log in as a user of the business whose bills you want to sync"
        )
    if wanted is not None:
        for membership in memberships:
            if membership.business_id == wanted:
                return membership
        known = ", ".join(f"{m.business_id} ({m.name})" for m in memberships)
        raise ConfigError(f"--business {wanted} is not one of yours: {known}")
    if len(memberships) == 1:
        return memberships[0]
    if choose is None:
        known = ", ".join(f"{m.business_id} ({m.name})" for m in memberships)
        raise ConfigError(f"you belong to several businesses; choose one with --business: {known}")
    picked = choose(memberships)
    return _choose(memberships, picked, None)


def auth_status(options: Options) -> dict[str, Any]:
    """What the login is, never the token itself."""
    from fbstampli.freshbooks.session import login_summary

    with open_runtime(options, lock=False) as rt:
        return login_summary(rt.store, rt.clock.now())


def auth_logout(options: Options) -> RunReport:
    """Revoke at FreshBooks when it answers; forget locally whatever happens."""
    from fbstampli.freshbooks.session import log_out

    report = RunReport("auth logout")
    with open_runtime(options) as rt:
        report.notes.append(log_out(rt))
        with rt.store.transaction():
            for name in (
                "freshbooks.account_id",
                "freshbooks.business_id",
                "freshbooks.business_name",
            ):
                rt.store.delete_value(name)
            rt.store.audit("logged_out")
        report.add("logged_out")
    return report


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
