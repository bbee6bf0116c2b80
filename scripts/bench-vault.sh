#!/usr/bin/env bash
# Benchmark: `keys rotate --data` over 10,000 secrets (target < 1 s; benchmarks.md).
# Builds release, fills a throw-away data dir through the bench_vault example (which
# also times rotations in process), then times the CLI end to end on the same data.
# Prints one line per measurement and a JSON summary last.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
ROUNDS=3
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

cargo build --release --no-default-features --example bench_vault --bin switchyard >&2
TARGET="${CARGO_TARGET_DIR:-target}/release"

# In-process figures: its measurement lines are printed, its JSON summary (the last
# line) goes into ours.
"$TARGET/examples/bench_vault" "$DIR" "$N" > "$DIR.inproc"
head -n -1 "$DIR.inproc"
INPROC="$(tail -n 1 "$DIR.inproc")"
rm -f "$DIR.inproc"

CLI_MS=()
for i in $(seq 1 "$ROUNDS"); do
  start=$(date +%s%N)
  SWITCHYARD_VAULT=file SWITCHYARD_LOG=error "$TARGET/switchyard" --data-dir "$DIR" --json keys rotate --data >/dev/null
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  CLI_MS+=("$ms")
  echo "cli keys rotate --data round $i: $N secrets in $ms ms (process start to exit)"
done
sorted=($(printf '%s\n' "${CLI_MS[@]}" | sort -n))
median=${sorted[$(( ROUNDS / 2 ))]}
printf '{"benchmark":"vault_rotate_data_cli","secrets":%s,"cli_rounds_ms":[%s],"cli_median_ms":%s,"target_ms":1000,"in_process":%s}\n' \
  "$N" "$(IFS=,; echo "${CLI_MS[*]}")" "$median" "$INPROC"
