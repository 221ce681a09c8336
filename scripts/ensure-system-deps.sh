#!/usr/bin/env bash
# Installs the system packages the test suite needs (redis-server), from Debian's packages,
# when missing. Outside CI it only reports what is missing; the suites skip with a message.
set -uo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "::: installing redis-server (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
    || echo "::: could not install redis-server; Redis suites will be skipped"
else
  echo "::: redis-server not found; Redis suites will be skipped (run: apt-get install redis-server)"
fi
exit 0
