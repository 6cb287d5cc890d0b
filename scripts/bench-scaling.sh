#!/usr/bin/env bash
# How `groupwarden scan` grows with the report: wall time, rows per second
# and peak resident memory at several sizes (median time of RUNS runs,
# default 3; largest peak).
#
#   scripts/bench-scaling.sh [ROWS ...]      (default 100000 1000000 5000000)
#
# Reports come from ../shared/bench/gen_report.py (or BENCH_DIR), kept in
# target/bench-vs-peers/ (a 5M-row report is about 760 MB). Prints a
# Markdown table: the stateless scan, then a stateful first scan into an
# empty state and a repeat scan of the same report (STATEFUL=0 skips
# them), with the state file's size.
set -euo pipefail
cd "$(dirname "$0")/.."

bench_dir=${BENCH_DIR:-../shared/bench}
work=${BENCH_WORK:-target/bench-vs-peers}
runs=${RUNS:-3}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000 5000000)
mkdir -p "$work"
cargo build --release --quiet
# The four rules the peers implement (the bundled set also has
# single-owner-groups, which needs the directory join the peers lack).
rules_dir="$work/peer-rules"
rm -rf "$rules_dir" && mkdir -p "$rules_dir"
for rule in deleted-with-storage high-external-members inactive-groups ownerless-groups; do
  cp "rules/$rule.rhai" "$rules_dir/"
done

stateful=${STATEFUL:-1}
# median wall time and largest peak of $work/scaling-NAME.times, as "s kb"
median() {
  sort -n "$work/scaling-$1.times" | awk '{ t[NR] = $1; if ($2 > m) m = $2 }
    END { printf "%s %s\n", (NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2), m }'
}
# Each timed scan writes a new output file: the previous one (up to 1.3 GB
# at 5M rows, from the repeat scan) is removed first, outside the timing.
# Replaced inside the scan, it is freed in the final rename, and on a file
# system mounted with `discard` (as on the machines these figures come
# from) freeing is a synchronous discard of its blocks, about 0.2 s per GB:
# the cost of the file the run before left, not of the scan.
scan() {
  rm -f "$work/scaling.jsonl"
  /usr/bin/time -f "%e %M" -a -o "$work/scaling-$1.times" ./target/release/groupwarden scan \
    --input "$2" --format jsonl --output "$work/scaling.jsonl" --rules "$rules_dir" "${@:3}" 2>/dev/null >/dev/null
}

echo "| rows | report | stateless (median of $runs) | rows/s | peak memory | stateful first | stateful repeat | peak memory | state file |"
echo "|---|---|---|---|---|---|---|---|---|"
for rows in "${sizes[@]}"; do
  report="$work/report-$rows.csv"
  [ -f "$report" ] || python3 "$bench_dir/gen_report.py" --rows "$rows" --out "$report"
  rm -f "$work"/scaling-*.times
  state_mb=-
  for _ in $(seq "$runs"); do
    scan stateless "$report" --no-state
    if [ "$stateful" = 1 ]; then
      rm -f "$work/scaling-state.db"*
      scan first "$report" --state "$work/scaling-state.db"
      state_mb=$(du -m "$work/scaling-state.db" | cut -f1)
      scan repeat "$report" --state "$work/scaling-state.db"
    fi
  done
  read -r s kb < <(median stateless)
  line=$(awk -v rows="$rows" -v mb="$(du -m "$report" | cut -f1)" -v s="$s" -v kb="$kb" \
    'BEGIN { printf "| %d | %d MB | %.2f s | %.0f | %.0f MiB |", rows, mb, s, rows / s, kb / 1024 }')
  if [ "$stateful" = 1 ]; then
    read -r f fkb < <(median first)
    read -r r rkb < <(median repeat)
    line+=$(awk -v f="$f" -v r="$r" -v fkb="$fkb" -v rkb="$rkb" -v st="$state_mb" \
      'BEGIN { printf " %.2f s | %.2f s | %.0f MiB | %d MB |", f, r, (fkb > rkb ? fkb : rkb) / 1024, st }')
  else
    line+=" - | - | - | - |"
  fi
  echo "$line"
done
rm -f "$work/scaling-state.db"*
rm -f "$work/scaling.jsonl"
