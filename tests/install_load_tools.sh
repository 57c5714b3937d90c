#!/bin/sh
# Installs the outside load generator that tests/test_server.py drives
# (wrk, from Debian's packages) when it is missing.  Needs root and apt.
set -e
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends wrk
