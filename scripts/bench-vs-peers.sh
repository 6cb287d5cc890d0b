#!/usr/bin/env bash
# groupwarden against the DuckDB and pandas peers on the same report, in the
# same run: wall time, peak resident memory, and per-rule finding counts
# (which must be equal).
#
#   scripts/bench-vs-peers.sh [ROWS]        (default 1000000)
#
# Needs python3 with duckdb and pandas (pip install duckdb pandas) and the
# peers in ../shared/bench/ (or BENCH_DIR). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${1:-1000000}
bench_dir=${BENCH_DIR:-../shared/bench}
work=${BENCH_WORK:-target/bench-vs-peers}
mkdir -p "$work"
report="$work/report-$rows.csv"

[ -f "$report" ] || python3 "$bench_dir/gen_report.py" --rows "$rows" --out "$report"
cargo build --release --quiet

# run NAME COMMAND...: wall seconds and peak KiB into $work/NAME.time
run() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" 2>"$work/$name.err" >/dev/null
}

run groupwarden ./target/release/groupwarden scan --input "$report" --format jsonl \
  --output "$work/groupwarden.jsonl" --rules rules --no-state
run duckdb python3 "$bench_dir/peer_duckdb.py" "$report" "$work/duckdb.jsonl"
run pandas python3 "$bench_dir/peer_pandas.py" "$report" "$work/pandas.jsonl"

# Per-rule counts, sorted, one "rule count" line each.
python3 - "$work" <<'PY'
import collections, json, sys
work = sys.argv[1]
def counts(name):
    c = collections.Counter()
    with open(f"{work}/{name}.jsonl", encoding="utf-8") as f:
        for line in f:
            c[json.loads(line)["rule"]] += 1
    return dict(sorted(c.items()))
gw, duck, pd = counts("groupwarden"), counts("duckdb"), counts("pandas")
print("per-rule counts:", gw)
if gw != duck or gw != pd:
    print("MISMATCH: duckdb", duck, "pandas", pd)
    sys.exit(1)
print("counts equal across groupwarden, duckdb and pandas")
PY

read -r gw_s gw_kb <"$work/groupwarden.time"
read -r duck_s duck_kb <"$work/duckdb.time"
read -r pd_s pd_kb <"$work/pandas.time"
echo
echo "| program | wall time | peak memory | time vs DuckDB |"
echo "|---|---|---|---|"
for entry in "groupwarden $gw_s $gw_kb" "peer_duckdb.py $duck_s $duck_kb" "peer_pandas.py $pd_s $pd_kb"; do
  set -- $entry
  awk -v n="$1" -v s="$2" -v kb="$3" -v d="$duck_s" \
    'BEGIN { printf "| %s | %.2f s | %.0f MiB | %.2f× |\n", n, s, kb / 1024, s / d }'
done
echo
echo "($rows rows, $(du -m "$report" | cut -f1) MB, $(nproc) cores; report: $report)"
