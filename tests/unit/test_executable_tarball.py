"""The executable's tarball gives its builder no hold on the installed program: members owned
by root and writable by their owner only, and the README's extraction keeps it so."""

import os
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

from tests.support.cli import REPO

NOBODY = 65534


def built_by_someone_with_umask_002(tmp_path: Path) -> Path:
    """A dist folder as a builder with umask 002 leaves it: theirs, group-writable."""
    dist = tmp_path / "dist"
    program = dist / "fbstampli"
    (program / "_internal").mkdir(parents=True)
    (program / "fbstampli").write_text("#!/bin/sh\n")
    (program / "_internal" / "libpython3.11.so.1.0").write_text("code\n")
    for path in [program, *program.rglob("*")]:
        os.chmod(path, 0o775 if path.is_dir() or path.name == "fbstampli" else 0o664)
        os.lchown(path, NOBODY, NOBODY)
    return dist


def test_the_tarball_members_are_roots_and_writable_by_their_owner_only(tmp_path: Path) -> None:
    dist = built_by_someone_with_umask_002(tmp_path)
    tarball = tmp_path / "fbstampli.tar.gz"
    subprocess.run([REPO / "scripts" / "pack-executable", dist, tarball], check=True)
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
    assert {m.name for m in members} >= {"fbstampli", "fbstampli/_internal/libpython3.11.so.1.0"}
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", ""), member.name
        assert member.mode & 0o022 == 0, (member.name, oct(member.mode))  # once: 0775
    assert "scripts/pack-executable" in (REPO / "scripts" / "build-executable").read_text()


def test_the_readme_extraction_gives_root_the_files_even_from_a_builders_tarball(
    tmp_path: Path,
) -> None:
    dist = built_by_someone_with_umask_002(tmp_path)
    tarball = tmp_path / "fbstampli-0.1.0-linux-x86_64.tar.gz"
    # Packed the old way, keeping the builder's owner and modes.
    subprocess.run(["tar", "-C", dist, "-czf", tarball, "fbstampli"], check=True)
    readme = (REPO / "README.md").read_text()
    line = re.search(r"^sudo (tar -C /opt .*-xzf fbstampli-\S+\.tar\.gz)$", readme, re.M)
    assert line is not None, "the README's extraction command"
    opt = tmp_path / "opt"
    opt.mkdir()
    command = shlex.split(line.group(1).replace("/opt", str(opt)))
    subprocess.run(command, cwd=tmp_path, check=True, preexec_fn=lambda: os.umask(0o022))
    installed = opt / "fbstampli"
    for path in [installed, *installed.rglob("*")]:
        status = path.lstat()
        assert status.st_uid == os.geteuid(), path  # once: the builder's
        assert status.st_mode & 0o022 == 0, (path, oct(status.st_mode))
