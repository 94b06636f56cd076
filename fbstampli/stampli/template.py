"""The Stampli file template: which columns go into each file we send, and how to read each export.

Stampli agrees its file layouts per customer at onboarding, so the layout is data (a TOML file),
validated once at start-up into frozen dataclasses. This module reads the template file and
nothing else; every problem is reported by its dotted path in one `TemplateError`. The shapes
live in `layouts`, the rules in `template_rules`; their names are re-exported here.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from fbstampli.errors import TemplateError
from fbstampli.stampli.layouts import (
    FILE_NAME_FIELDS,
    ISO,
    LINE_ENDINGS,
    RECORD_FIELDS,
    SECTION_OF_KIND,
    SEQUENCE_OF_KIND,
    SOURCE_FIELDS,
    Column,
    ExportColumn,
    ExportLayout,
    FieldType,
    FileFormat,
    OutgoingLayout,
    Template,
)
from fbstampli.stampli.template_rules import build, column_where, did_you_mean

__all__ = [
    "DEFAULT_TEMPLATE_NAME",
    "FILE_NAME_FIELDS",
    "ISO",
    "LINE_ENDINGS",
    "RECORD_FIELDS",
    "SECTION_OF_KIND",
    "SEQUENCE_OF_KIND",
    "SOURCE_FIELDS",
    "Column",
    "ExportColumn",
    "ExportLayout",
    "FieldType",
    "FileFormat",
    "OutgoingLayout",
    "Template",
    "column_where",
    "did_you_mean",
    "load_template",
    "parse_template",
]

DEFAULT_TEMPLATE_NAME = "default.toml"


def load_template(path: Path | None) -> Template:
    """Read and validate a template file; `None` means the packaged example default."""
    if path is None:
        origin = "<packaged default template>"
        text = (
            resources.files("fbstampli.stampli")
            .joinpath("templates", DEFAULT_TEMPLATE_NAME)
            .read_text(encoding="utf-8")
        )
    else:
        origin = str(path)
        try:
            if path.exists() and not path.is_file():  # /dev/zero or a pipe would never end
                raise TemplateError(f"Stampli template {path} is not a plain file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateError(
                f"Stampli template {path} does not exist; fix stampli.template in the config"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise TemplateError(f"Stampli template {path} cannot be read: {error}") from None
    return parse_template(text, origin=origin)


def parse_template(text: str, *, origin: str = "<template>") -> Template:
    """Validate template text; raises one `TemplateError` naming every bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TemplateError(f"Stampli template {origin} is not valid TOML: {error}") from None
    problems: list[str] = []
    template = build(data, problems, origin)
    if problems or template is None:
        raise TemplateError(f"Stampli template {origin} is invalid: " + "; ".join(problems))
    return template
