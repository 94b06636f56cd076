#!/usr/bin/env bash
# Creates what the sshd-backed contract tests need, idempotently; run as root (.ci/run does).
# The test user has no usable password and no shell: the tests set a random password for the
# length of a session and lock it again afterwards; it can only run internal-sftp.
set -euo pipefail
user=fbstampli-sftp
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/sshd_setup.sh: must run as root (creates user $user)" >&2
  exit 1
fi
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
fi
usermod -p '!' "$user"
# sshd's privilege-separation directory.
install -d -m 0755 /run/sshd
