"""What makes a version of an object, and the Action and Version cells each version carries.

A version is the object's own FreshBooks data as its rows show it. Cells the object
borrows from another one (a bill's or payment's vendor name) are left out of its
hash, so a vendor rename is the vendor's change alone; the rows still carry the
name current when the object itself next changes. A template with
`resend_on_rename = true` counts the borrowed cells too. The Action and Version
cells are filled when a version is queued (`stamp_rows`), never hashed.
Pure: data in, data out.
"""

from __future__ import annotations

from collections.abc import Sequence

from fbstampli.models import Kind
from fbstampli.stampli.files import content_hash
from fbstampli.stampli.layouts import STAMPED_FIELDS, Template

Row = tuple[str, ...]

# Cells a row of this kind takes from another object.
BORROWED: dict[Kind, frozenset[str]] = {
    Kind.CATEGORY: frozenset(),
    Kind.TAX: frozenset(),
    Kind.VENDOR: frozenset(),
    Kind.BILL: frozenset({"vendor_name"}),
    Kind.PAYMENT: frozenset({"vendor_name"}),
}

NEW, UPDATE, VOID, RESTORE = "new", "update", "void", "restore"


def _indexes(template: Template, kind: Kind, sources: frozenset[str]) -> tuple[int, ...]:
    return tuple(
        index
        for index, column in enumerate(template.layout(kind).columns)
        if column.source in sources
    )


def version_hash(template: Template, kind: Kind, rows: Sequence[Row]) -> str:
    """The hash that says whether an object changed: its rows without stamped or borrowed cells."""
    left_out = frozenset(STAMPED_FIELDS)
    if not template.resend_on_rename:
        left_out |= BORROWED[kind]
    blank = set(_indexes(template, kind, left_out))
    return content_hash(
        tuple("" if index in blank else cell for index, cell in enumerate(row)) for row in rows
    )


def legacy_hash(template: Template, kind: Kind, rows: Sequence[Row]) -> str:
    """The hash a version had before rows carried Action and Version columns.

    Snapshots written by an earlier release hold this hash; an object whose rows
    are otherwise the same is not a change (an upgrade re-sends nothing).
    """
    dropped = set(_indexes(template, kind, frozenset(STAMPED_FIELDS)))
    return content_hash(
        tuple(cell for index, cell in enumerate(row) if index not in dropped) for row in rows
    )


def action_word(template: Template, action: str) -> str:
    """The word the template's `[actions]` table gives an action."""
    return dict(template.actions)[action]


def stamp_rows(
    template: Template, kind: Kind, rows: Sequence[Row], *, action: str, version: int
) -> tuple[Row, ...]:
    """The rows with their Action and Version cells filled in."""
    columns = template.layout(kind).columns
    values = {"action": action_word(template, action), "version": str(version)}
    stamped = {
        index: values[column.source]
        for index, column in enumerate(columns)
        if column.source in STAMPED_FIELDS
    }
    if not stamped:
        return tuple(rows)
    return tuple(tuple(stamped.get(index, cell) for index, cell in enumerate(row)) for row in rows)
