"""The engine's rules the CLI applies to rows it shows: the spreadsheet formula guard on every
CSV cell, and which reconcile outcomes need a person.

Here so that `cli/` takes them from the services it calls and reaches no further down
(`stampli/`, `sync/`); the rules themselves stay where the engine keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def csv_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: strings get the formula guard, numbers stay."""
    from fbstampli.stampli.render import neutralise_formula

    return neutralise_formula(value) if isinstance(value, str) else value


def needs_attention(row: Mapping[str, Any]) -> bool:
    """Whether a reconcile row's outcome wants a person (mismatches, not work in progress)."""
    from fbstampli.models.outcome import Outcome

    return Outcome(row["outcome"]).needs_attention
