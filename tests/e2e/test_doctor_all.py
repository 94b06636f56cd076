"""`doctor --all` (issue 29): every business of an installation checked in its own home, one
section each, the exit code the worst business's; `--json` in the shape of `sync --all`."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_businesses import Installation, two_businesses
from tests.support.cli import one_line


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    with two_businesses(tmp_path) as made:
        yield made


def break_config(installation: Installation) -> None:
    """beta's config gains a setting that does not exist: its doctor fails `config`."""
    with (installation.beta.home / "config.toml").open("a") as config:
        config.write("\n[sync]\nbatch_sise = 3\n")


def test_doctor_all_checks_every_business_in_a_section_and_exits_the_worst(
    installation: Installation,
) -> None:
    healthy = installation.run("doctor", "--all")
    assert healthy.code == 0, healthy.output
    break_config(installation)
    result = installation.run("doctor", "--all")

    assert result.code == 1
    alpha, beta = result.stdout.split("\n\n")
    assert alpha.startswith(f"business alpha ({installation.alpha.home})\nok   config")
    assert "FAIL" not in alpha
    assert beta.startswith(f"business beta ({installation.beta.home})\nFAIL config")
    assert "batch_sise" in beta
    assert one_line(result.stderr)
    assert result.stderr.startswith("fbstampli: business beta: doctor found config failing")
    assert "`fbstampli --business beta doctor`" in result.stderr


def test_doctor_all_json_has_each_business_s_checks_and_the_worst_code(
    installation: Installation,
) -> None:
    break_config(installation)
    result = installation.run("doctor", "--all", "--json")

    assert result.code == 1
    document = json.loads(result.stdout)
    assert (document["command"], document["exit_code"]) == ("doctor", 1)
    by_name = {business["business"]: business for business in document["businesses"]}
    assert list(by_name) == ["alpha", "beta"]
    assert by_name["alpha"]["exit_code"] == 0
    assert all(check["ok"] for check in by_name["alpha"]["checks"])
    assert by_name["beta"]["exit_code"] == 1
    failed = [check for check in by_name["beta"]["checks"] if not check["ok"]]
    assert [check["name"] for check in failed] == ["config"]
    assert "batch_sise" in failed[0]["detail"]


def test_doctor_all_refuses_a_business_and_an_api_report(installation: Installation) -> None:
    named = installation.run("--business", "alpha", "doctor", "--all")
    report = installation.run("doctor", "--all", "--api-report", "report.json")
    assert (named.code, report.code) == (2, 2)
    assert one_line(named.stderr)
    assert "drop --business" in named.stderr
    assert one_line(report.stderr)
    assert "--api-report probes one business" in report.stderr


def test_doctor_all_hints_name_the_business_they_are_for(installation: Installation) -> None:
    (installation.beta.home / "state.db").unlink()
    result = installation.run("doctor", "--all")

    assert result.code == 1
    beta = result.stdout.split("\n\n")[1]
    assert "FAIL state file" in beta
    assert "`fbstampli --business beta init`" in beta
    assert "`fbstampli init`" not in result.stdout
