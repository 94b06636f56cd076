#!/usr/bin/env bash
# What the test suite needs from the system, installed idempotently:
# OpenSSH's sshd (the contract tests run a real one on 127.0.0.1) and its test user.
set -euo pipefail
if [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/setup.sh: openssh-server is missing; install it (apt-get install openssh-server) as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
fi
here="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$here/sshd_setup.sh" ]; then
  bash "$here/sshd_setup.sh"
fi
