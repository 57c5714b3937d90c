#!/bin/sh
# Installs, from Debian's packages, the outside programs that the tests and
# CI run, each only if its command is missing.  Needs root and apt-get.
#
#   sh tests/install_tools.sh COMMAND[=PACKAGE[,PACKAGE...]] ...
#
# A bare COMMAND comes in the package of the same name.  .ci/run calls this
# with its whole list; a test whose program is missing fails and names
# the command to give here.
set -e
need=""
for spec in "$@"; do
    cmd=${spec%%=*}
    pkgs=${spec#*=}
    command -v "$cmd" >/dev/null 2>&1 && continue
    need="$need $(echo "$pkgs" | tr ',' ' ')"
done
[ -z "$need" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need
