#!/usr/bin/env bash
# How `groupwarden scan` grows with the report: wall time, rows per second
# and peak resident memory at several sizes (median time of RUNS runs,
# default 3; largest peak).
#
#   scripts/bench-scaling.sh [ROWS ...]      (default 100000 1000000 5000000)
#
# Reports come from ../shared/bench/gen_report.py (or BENCH_DIR), kept in
# target/bench-vs-peers/ (a 5M-row report is about 760 MB). Prints a
# Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

bench_dir=${BENCH_DIR:-../shared/bench}
work=${BENCH_WORK:-target/bench-vs-peers}
runs=${RUNS:-3}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000 5000000)
mkdir -p "$work"
cargo build --release --quiet

echo "| rows | report | wall time (median of $runs) | rows/s | peak memory |"
echo "|---|---|---|---|---|"
for rows in "${sizes[@]}"; do
  report="$work/report-$rows.csv"
  [ -f "$report" ] || python3 "$bench_dir/gen_report.py" --rows "$rows" --out "$report"
  rm -f "$work/scaling.times"
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -a -o "$work/scaling.times" ./target/release/groupwarden scan \
      --input "$report" --format jsonl --output "$work/scaling.jsonl" --rules rules --no-state \
      2>/dev/null >/dev/null
  done
  sort -n "$work/scaling.times" | awk -v rows="$rows" -v mb="$(du -m "$report" | cut -f1)" \
    '{ t[NR] = $1; if ($2 > m) m = $2 }
     END { s = (NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2);
           printf "| %d | %d MB | %.2f s | %.0f | %.0f MiB |\n", rows, mb, s, rows / s, m / 1024 }'
done
rm -f "$work/scaling.jsonl"
