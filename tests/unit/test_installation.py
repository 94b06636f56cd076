"""The installation file and the order of exit codes that `sync --all` ends with."""

from pathlib import Path

import pytest

from fbstampli.errors import ConfigError, ExitCode
from fbstampli.installation import BusinessHome, Installation, check_name
from fbstampli.services.business import worst


def test_a_recorded_business_reads_back_with_its_home(tmp_path: Path) -> None:
    installation = Installation(tmp_path)
    installation.record(BusinessHome("beta", installation.new_home("beta"), adopted=False))
    installation.record(BusinessHome("alpha", Path("/srv/old home"), adopted=True))
    assert installation.businesses() == [
        BusinessHome("alpha", Path("/srv/old home"), adopted=True),
        BusinessHome("beta", tmp_path / "businesses" / "beta", adopted=False),
    ]
    assert not list(tmp_path.glob(".*writing"))  # written beside and renamed over


def test_a_path_with_quotes_and_backslashes_survives_the_file(tmp_path: Path) -> None:
    odd = Path('/srv/a "b" \\c')
    Installation(tmp_path).record(BusinessHome("odd", odd, adopted=True))
    assert Installation(tmp_path).business("odd").home == odd


def test_two_names_for_one_home_are_refused(tmp_path: Path) -> None:
    installation = Installation(tmp_path)
    installation.record(BusinessHome("one", Path("/srv/h"), adopted=True))
    with pytest.raises(ConfigError, match="already a business"):
        installation.record(BusinessHome("two", Path("/srv/h"), adopted=True))


def test_forgetting_a_business_leaves_the_others(tmp_path: Path) -> None:
    installation = Installation(tmp_path)
    for name in ("a", "b"):
        installation.record(BusinessHome(name, Path(f"/srv/{name}"), adopted=True))
    installation.forget("a")
    assert [b.name for b in installation.businesses()] == ["b"]


@pytest.mark.parametrize("name", ["", "A", "../x", "a/b", "-a", "a b", "x" * 41, "é"])
def test_names_that_cannot_be_a_folder_and_a_url_segment_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="lower-case letters"):
        check_name(name)


def test_a_broken_installation_file_is_a_usage_error_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "installation.toml").write_text("[businesses\n")
    with pytest.raises(ConfigError, match=r"installation\.toml is not valid TOML"):
        Installation(tmp_path).businesses()


def test_worst_code_ranks_what_needs_a_person_above_what_heals_itself() -> None:
    assert worst([]) == 0
    assert worst([0, 75]) == 75
    assert worst([75, 1]) == 1
    assert worst([1, 3, 75]) == 3
    assert worst([3, 2]) == 2
    assert worst([2, 4]) == 4
    assert worst([4, 70, 0]) == 70
    assert worst([0, 99]) == 99  # unknown: treated as a bug
    assert worst([int(ExitCode.OK)]) == 0
