#!/usr/bin/env bash
# What the sshd-backed contract tests need from the system, idempotently; run as root.
# The tests create their own Unix user per session (a random password, no shell, only
# internal-sftp through the test's own sshd on 127.0.0.1) and remove it afterwards.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/sshd_setup.sh: must run as root (the sshd tests create a user per session)" >&2
  exit 1
fi
# Users an interrupted session may have left behind: locked, and removed here.
for user in $(getent passwd | cut -d: -f1 | grep -E '^fbstampli-sftp(-[0-9]+)?$' || true); do
  pid=${user##*-}
  if [ "$pid" = "sftp" ] || ! kill -0 "$pid" 2>/dev/null; then
    userdel "$user" 2>/dev/null || true
  fi
done
# sshd's privilege-separation directory.
install -d -m 0755 /run/sshd
