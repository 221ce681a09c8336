#!/usr/bin/env bash
# Installs the system packages the test suites need (redis-server, from Debian's packages) when
# they are missing. Under CI=true a missing redis-server that cannot be installed is an error:
# the Redis suites fail rather than skip in CI. Outside CI it only reports; those suites skip
# with a message.
set -uo pipefail

have_redis() { command -v redis-server >/dev/null 2>&1 && redis-server --version >/dev/null 2>&1; }

if have_redis; then
  echo "::: $(redis-server --version | cut -d' ' -f1-3)"
  exit 0
fi

if [ "${CI:-}" != "true" ]; then
  echo "::: redis-server not found; the Redis suites will be skipped (apt-get install redis-server)"
  exit 0
fi

as_root=()
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "::: redis-server is missing and this CI user cannot install packages (not root, no sudo)" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "::: redis-server is missing and apt-get is not available to install it" >&2
  exit 1
fi

echo "::: installing redis-server (Debian package)"
# The package's service is not needed (tests start their own server on a free port), and a
# container has no init to start it: policy-rc.d would refuse, which is fine.
if ! { "${as_root[@]}" apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
    redis-server >/dev/null; }; then
  echo "::: could not install redis-server" >&2
  exit 1
fi
if ! have_redis; then
  echo "::: redis-server was installed but does not run" >&2
  exit 1
fi
echo "::: $(redis-server --version | cut -d' ' -f1-3)"
