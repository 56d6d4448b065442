# SPDX-License-Identifier: Apache-2.0
# Shared by the port mapper shell tests (sourced, not run):
#   test_epmd_*.sh EDIST_BINARY TEST_EPMD_TOOL
# Every process a test starts is recorded and killed by PID on exit
# (tests/common/lib.sh); all traffic stays on 127.0.0.1, on ports chosen
# free, never 4369.
set -u

EDIST=${1:?usage: $0 EDIST_BINARY TEST_EPMD_TOOL}
TOOL=${2:?usage: $0 EDIST_BINARY TEST_EPMD_TOOL}
. "$(dirname "${BASH_SOURCE[0]}")/../common/lib.sh"
peers_init edist-epmd-test
unset ERL_EPMD_PORT ERL_EPMD_ADDRESS ERL_EPMD_RELAXED_COMMAND_CHECK

# names_has PORT TEXT: our client's NAMES reply contains TEXT.
names_has() { "$TOOL" names "$1" 2>/dev/null | grep -qF -- "$2"; }
names_lacks() { ! names_has "$@"; }
