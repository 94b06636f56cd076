"""`doctor --all`: every check of `doctor`, in every business of an installation, one section
each, so an operator of many businesses asks once which of them needs fixing and how.

Each business is checked in its own home exactly as `fbstampli --business NAME doctor`
would; a home that cannot even be looked at is that business's outcome, never the others'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbstampli.errors import FbstampliError
from fbstampli.installation import BusinessHome, business_options
from fbstampli.options import Options
from fbstampli.services.business import every_business, worst
from fbstampli.services.doctor import CheckResult, run_checks


@dataclass(slots=True)
class BusinessChecks:
    """One business's checks, or the error that kept them from running (and its exit code)."""

    name: str
    home: Path
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    error_code: int = 0

    @property
    def exit_code(self) -> int:
        """As `doctor` in that home: 0 when every check passed, 1 when one failed."""
        if self.error is not None:
            return self.error_code
        return 0 if all(check.ok for check in self.checks) else 1

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]


def doctor_all(
    options: Options,
    *,
    begin: Callable[[BusinessHome], None] = lambda business: None,
    tell: Callable[[CheckResult], None] = lambda result: None,
) -> list[BusinessChecks]:
    """Every business's checks in installation order; `begin` hears each business before its
    first check, `tell` each check as soon as it is known (as `doctor` prints them)."""
    from fbstampli.logs import redact

    found: list[BusinessChecks] = []
    for business in every_business(options):
        begin(business)
        try:
            checks = run_checks(business_options(options, business), tell=tell)
        except FbstampliError as error:  # e.g. a home another user owns: refused, not looked in
            said = redact(str(error))
            tell(CheckResult("home", False, said))
            found.append(
                BusinessChecks(
                    business.name, business.home, error=said, error_code=int(error.exit_code)
                )
            )
            continue
        found.append(BusinessChecks(business.name, business.home, checks))
    return found


def exit_code(found: list[BusinessChecks]) -> int:
    """The worst business's code, ranked as `sync --all` ranks them."""
    return worst([business.exit_code for business in found])


def as_document(found: list[BusinessChecks], check: Callable[[Any], Any]) -> dict[str, Any]:
    """`doctor --all --json`: the shape of `sync --all --json`, each business's checks in the
    shape of `doctor --json` (made by `check`)."""
    return {
        "command": "doctor",
        "exit_code": exit_code(found),
        "businesses": [
            {
                "business": business.name,
                "home": str(business.home),
                "exit_code": business.exit_code,
                "error": business.error,
                "checks": [check(result) for result in business.checks],
            }
            for business in found
        ],
    }
