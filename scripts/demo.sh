#!/usr/bin/env bash
# The newcomer's first command: set up the newest Debian 12 kernel 6.1 as the
# target, build a livepatch and prove it in a VM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
node bin/klpgen.js target setup "$@"
node bin/klpgen.js demo "$@"
