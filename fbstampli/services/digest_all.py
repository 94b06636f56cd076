"""`digest --all`: the daily digest of every business of an installation, each alone.

Apart from services/digest.py because it runs businesses the way services/business.py
does, and `sync` (below business.py) sends a business's own digest.
"""

from __future__ import annotations

from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.services.business import AllReport


def digest_all(options: Options) -> AllReport:
    """`digest --send` in every business of the installation, each alone."""
    from fbstampli.installation import business_options
    from fbstampli.logs import also_logging_to
    from fbstampli.services.business import (
        _business_log,
        _log_outcome,
        every_business,
        refused,
        run_one,
    )
    from fbstampli.services.digest import digest

    result = AllReport("digest")
    for business in every_business(options):
        try:
            inner = business_options(options, business)  # its home checked before its log opens
        except ConfigError as error:
            result.outcomes.append(refused(business, error))
            continue
        with also_logging_to(_business_log(business)):
            outcome = run_one(
                business, lambda inner=inner: digest(inner, send_it=True, output=None).report
            )
            _log_outcome("digest", outcome)
        result.outcomes.append(outcome)
    return result
