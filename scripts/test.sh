#!/usr/bin/env bash
# The test command: type-check and build, then every test (unit and the real
# kernel ones: target setup, Kbuild, VM). The target is set up on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The code's one format (prettier, 120 columns): `npm run format` writes it.
npm run --silent format:check
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
exec node --test --test-concurrency=1 "${files[@]}"
