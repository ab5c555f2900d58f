#!/usr/bin/env bash
# The whole real-fix corpus through create and the VM: the slow job beside CI's sample.
# Resumable: scores go to a journal (JSON lines) and a re-run skips what it holds.
#   scripts/corpus-full.sh [ABI] [JOBS]     (defaults: 6.1.0-54, the number of CPUs)
# Prints the scoreboard and writes it to corpus/<ABI>/scoreboard-full.json.
set -euo pipefail
cd "$(dirname "$0")/.."
abi=${1:-6.1.0-54}
jobs=${2:-$(nproc)}
journal=${KLPGEN_JOURNAL:-corpus/$abi/scoreboard-full.jsonl}
node bin/klpgen.js target setup --abi "$abi" >&2
pids=()
for k in $(seq 1 "$jobs"); do
  node bin/klpgen.js scoreboard "corpus/$abi" --abi "$abi" --journal "$journal" --shard "$k/$jobs" --json > /dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# Every patch is in the journal now: this only reads it.
node bin/klpgen.js scoreboard "corpus/$abi" --abi "$abi" --journal "$journal" --json > "corpus/$abi/scoreboard-full.json"
node bin/klpgen.js scoreboard "corpus/$abi" --abi "$abi" --journal "$journal" | head -12
