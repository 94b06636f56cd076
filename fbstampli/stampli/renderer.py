"""The sync engine's `Renderer`, made of a validated Stampli template.

Pure: the template file is read once by `load`; everything after is data in,
rows and bytes out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from fbstampli.models import Bill, Kind, SourceObject
from fbstampli.stampli.render import content_hash, file_name, render_file, render_rows
from fbstampli.stampli.template import Template, load_template


class TemplateRenderer:
    def __init__(self, template: Template) -> None:
        self.template = template

    @classmethod
    def load(cls, path: Path | None) -> TemplateRenderer:
        return cls(load_template(path))

    def rows(
        self,
        obj: SourceObject,
        vendor_names: Mapping[int, str],
        bills: Mapping[int, Bill],
    ) -> list[tuple[str, ...]]:
        return [
            tuple(row)
            for row in render_rows(self.template, obj, vendor_names=vendor_names, bills=bills)
        ]

    def content_hash(self, rows: Sequence[tuple[str, ...]]) -> str:
        return content_hash(rows)

    def file_bytes(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> bytes:
        return render_file(self.template, kind, rows)

    def file_name(self, kind: Kind, *, business: str, created_at: datetime, batch_id: int) -> str:
        return file_name(
            self.template, business=business, created_at=created_at, batch_id=batch_id, kind=kind
        )
