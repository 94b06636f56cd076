"""One settings schema (`fbstampli/settings_schema.py`) generates both config files and the
settings table; these fail when any of them drifts from it (regenerate with
`python -m fbstampli.settings_schema --write`)."""

import re
import tomllib
from importlib import resources
from pathlib import Path

from fbstampli import settings_schema
from fbstampli.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_described_once() -> None:
    names = [f"{s.name}.{k.name}" for s in settings_schema.SCHEMA for k in s.keys]
    assert len(names) == len(set(names))
    assert set(names) == settings_schema.every_setting()


def test_the_packaged_config_is_generated_from_the_schema() -> None:
    packaged = resources.files("fbstampli").joinpath("templates/config.toml").read_text()
    assert packaged == settings_schema.config_text()


def test_the_example_config_is_generated_from_the_schema() -> None:
    example = (REPO / "examples" / "config.toml").read_text(encoding="utf-8")
    assert example == settings_schema.config_text()


def test_the_settings_table_in_the_docs_is_generated_from_the_schema() -> None:
    document = (REPO / "docs" / "SETTINGS.md").read_text(encoding="utf-8")
    assert settings_schema.TABLE_START in document
    assert document == settings_schema.with_table(document)


def test_the_generated_file_loads_and_uncommented_it_sets_only_the_defaults(
    tmp_path: Path,
) -> None:
    """Every `# key = value` line is valid TOML and, but for the example template path,
    the value is the default: uncommenting the file changes nothing."""
    text = settings_schema.config_text()
    uncommented = "\n".join(
        line[2:].split("  #")[0] if re.match(r"# \w+ = ", line) else line
        for line in text.splitlines()
    )
    config = tmp_path / "config.toml"
    config.write_text(uncommented.replace('"/etc/fbstampli/stampli-template.toml"', '""'))
    assert tomllib.loads(config.read_text())
    assert load_settings({}, {}, config) == load_settings({}, {}, None)
