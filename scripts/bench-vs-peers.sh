#!/usr/bin/env bash
# groupwarden against the DuckDB and pandas peers on the same report, in the
# same run: wall time, peak resident memory, and per-rule finding counts
# (which must be equal).
#
#   scripts/bench-vs-peers.sh [ROWS]        (default 1000000)
#
# Each program runs RUNS times (default 3), interleaved; the table shows the
# median wall time and the largest peak RSS. Besides the peers it runs the
# hard-coded loop (benches/peers/hardcoded_loop.rs: the four rules written
# in Rust, one thread), the practical floor.
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
cargo build --release --quiet --example hardcoded-loop
runs=${RUNS:-3}

# run NAME COMMAND...: appends "wall-seconds peak-KiB" to $work/NAME.times
run() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -a -o "$work/$name.times" "$@" 2>"$work/$name.err" >/dev/null
}

rm -f "$work"/*.times
for _ in $(seq "$runs"); do
  run groupwarden ./target/release/groupwarden scan --input "$report" --format jsonl \
    --output "$work/groupwarden.jsonl" --rules rules --no-state
  run hardcoded ./target/release/examples/hardcoded-loop "$report" "$work/hardcoded.jsonl"
  run duckdb python3 "$bench_dir/peer_duckdb.py" "$report" "$work/duckdb.jsonl"
  run pandas python3 "$bench_dir/peer_pandas.py" "$report" "$work/pandas.jsonl"
done

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
gw, duck, pd, hc = counts("groupwarden"), counts("duckdb"), counts("pandas"), counts("hardcoded")
print("per-rule counts:", gw)
if gw != duck or gw != pd or gw != hc:
    print("MISMATCH: duckdb", duck, "pandas", pd, "hard-coded loop", hc)
    sys.exit(1)
print("counts equal across groupwarden, the hard-coded loop, duckdb and pandas")
PY

# median wall time and largest peak RSS of NAME's runs
summary() {
  sort -n "$work/$1.times" | awk '{ t[NR] = $1; if ($2 > m) m = $2 }
    END { printf "%s %s\n", (NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2), m }'
}
read -r duck_s _ < <(summary duckdb)
read -r hc_s _ < <(summary hardcoded)
echo
echo "| program | wall time (median of $runs) | peak memory | time vs DuckDB | time vs hard-coded loop |"
echo "|---|---|---|---|---|"
for entry in "groupwarden:groupwarden scan" "hardcoded:hard-coded loop (1 thread)" \
  "duckdb:peer_duckdb.py" "pandas:peer_pandas.py"; do
  read -r s kb < <(summary "${entry%%:*}")
  awk -v n="${entry#*:}" -v s="$s" -v kb="$kb" -v d="$duck_s" -v h="$hc_s" \
    'BEGIN { printf "| %s | %.2f s | %.0f MiB | %.2f× | %.2f× |\n", n, s, kb / 1024, s / d, s / h }'
done
echo
echo "($rows rows, $(du -m "$report" | cut -f1) MB, $(nproc) cores; report: $report)"
