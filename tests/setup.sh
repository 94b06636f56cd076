#!/usr/bin/env bash
# What the test suite needs from the system, installed idempotently:
# OpenSSH's sshd (the contract tests run a real one on 127.0.0.1) and its test user;
# dbus-daemon (the executable's test proves keyring's backends on a private D-Bus);
# Chromium (the digest's HTML is rendered by a real headless browser).
set -euo pipefail
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/setup.sh: ${missing[*]} missing; install it (apt-get install ${missing[*]}) as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
here="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$here/sshd_setup.sh" ]; then
  bash "$here/sshd_setup.sh"
fi
