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
# Then the stateful rows (see below): our scan keeping state against
# peer_duckdb_stateful.py, first, repeat and 1%-changed scans, with the
# per-rule and status counts checked equal.
#
# Needs python3 with duckdb and pandas (pip install duckdb pandas) and the
# peers in ../shared/bench/ (or BENCH_DIR). Prints Markdown tables and the
# load average before and after (the machine may be shared).
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${1:-1000000}
bench_dir=${BENCH_DIR:-../shared/bench}
work=${BENCH_WORK:-target/bench-vs-peers}
mkdir -p "$work"
report="$work/report-$rows.csv"

[ -f "$report" ] || python3 "$bench_dir/gen_report.py" --rows "$rows" --out "$report"
cargo build --release --quiet
# The four rules the peers implement (the bundled set also has
# single-owner-groups, which needs the directory join the peers lack).
rules_dir="$work/peer-rules"
rm -rf "$rules_dir" && mkdir -p "$rules_dir"
for rule in deleted-with-storage high-external-members inactive-groups ownerless-groups; do
  cp "rules/$rule.rhai" "$rules_dir/"
done
cargo build --release --quiet --example hardcoded-loop
runs=${RUNS:-3}

# run NAME COMMAND...: appends "wall-seconds peak-KiB" to $work/NAME.times
run() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -a -o "$work/$name.times" "$@" 2>"$work/$name.err" >/dev/null
}

rm -f "$work"/*.times
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for _ in $(seq "$runs"); do
  run groupwarden ./target/release/groupwarden scan --input "$report" --format jsonl \
    --output "$work/groupwarden.jsonl" --rules "$rules_dir" --no-state
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

# Stateful scans: ours and the DuckDB stateful peer (findings merged into a
# persistent table), each a first scan into an empty state and a repeat
# scan of the same report on that state; then, on a copy of the state the
# first scan left, a scan of the report with about 1% of the findings
# changed (every 150th row's last activity a day earlier, every 300th
# row's owner added or removed). STATEFUL=0 skips them.
stateful=${STATEFUL:-1}
changed="$work/report-$rows-changed.csv"
if [ "$stateful" = 1 ]; then
  [ -f "$changed" ] || python3 - "$report" "$changed" <<'PY'
import csv, datetime, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, newline="", encoding="utf-8-sig") as f, open(dst, "w", newline="", encoding="utf-8-sig") as g:
    reader, writer = csv.reader(f), csv.writer(g, lineterminator="\n")
    header = next(reader)
    writer.writerow(header)
    last, owner = header.index("Last Activity Date"), header.index("Owner Principal Name")
    for i, row in enumerate(reader):
        if i % 150 == 0 and row[last]:
            day = datetime.date.fromisoformat(row[last]) - datetime.timedelta(days=1)
            row[last] = day.isoformat()
        if i % 300 == 0:
            row[owner] = "" if row[owner] else f"owner{i}@contoso.com"
        writer.writerow(row)
PY
  for _ in $(seq "$runs"); do
    for name in gw duck; do rm -f "$work/$name-state".* "$work/$name-base".*; done
    run gw-first ./target/release/groupwarden scan --input "$report" --format jsonl \
      --output "$work/gw-first.jsonl" --rules "$rules_dir" --state "$work/gw-state.db"
    cp "$work/gw-state.db" "$work/gw-base.db"
    run gw-repeat ./target/release/groupwarden scan --input "$report" --format jsonl \
      --output "$work/gw-repeat.jsonl" --rules "$rules_dir" --state "$work/gw-state.db"
    cp "$work/gw-base.db" "$work/gw-state.db"
    run gw-changed ./target/release/groupwarden scan --input "$changed" --format jsonl \
      --output "$work/gw-changed.jsonl" --rules "$rules_dir" --state "$work/gw-state.db"
    run duck-first python3 "$bench_dir/peer_duckdb_stateful.py" "$report" "$work/duck-state.duckdb" "$work/duck-first.jsonl"
    cp "$work/duck-state.duckdb" "$work/duck-base.duckdb"
    run duck-repeat python3 "$bench_dir/peer_duckdb_stateful.py" "$report" "$work/duck-state.duckdb" "$work/duck-repeat.jsonl"
    cp "$work/duck-base.duckdb" "$work/duck-state.duckdb"
    run duck-changed python3 "$bench_dir/peer_duckdb_stateful.py" "$changed" "$work/duck-state.duckdb" "$work/duck-changed.jsonl"
  done
  state_mb=$(du -m "$work/gw-base.db" | cut -f1)
  # Per rule and status, the scan's findings (resolved ones apart: the
  # peer writes only current findings, so its resolved count is read from
  # its state).
  python3 - "$work" <<'PY'
import collections, json, sys, duckdb
work = sys.argv[1]
def counts(name):
    c, resolved = collections.Counter(), 0
    with open(f"{work}/{name}.jsonl", encoding="utf-8") as f:
        for line in f:
            finding = json.loads(line)
            if finding["status"] == "resolved":
                resolved += 1
            else:
                c[(finding["rule"], finding["status"])] += 1
    return dict(sorted(c.items())), resolved
failed = False
for scan in ["first", "repeat", "changed"]:
    (gw, gw_resolved), (duck, _) = counts(f"gw-{scan}"), counts(f"duck-{scan}")
    statuses = collections.Counter()
    for (rule, status), n in gw.items():
        statuses[status] += n
    statuses["resolved"] = gw_resolved
    line = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    print(f"stateful {scan}: {line}")
    if gw != duck:
        print(f"MISMATCH in the {scan} scan: groupwarden {gw} duckdb {duck}")
        failed = True
con = duckdb.connect(f"{work}/duck-state.duckdb", read_only=True)
duck_resolved = con.execute("SELECT count(*) FROM findings WHERE status = 'resolved'").fetchone()[0]
if duck_resolved != gw_resolved:
    print(f"MISMATCH in resolved findings of the changed scan: groupwarden {gw_resolved} duckdb {duck_resolved}")
    failed = True
if failed:
    sys.exit(1)
print("per-rule and status counts equal between groupwarden and the duckdb stateful peer (first, repeat, 1% changed)")
PY
fi

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
if [ "$stateful" = 1 ]; then
  read -r gw_s _ < <(summary groupwarden)
  echo
  echo "| stateful scan | groupwarden (median of $runs) | peak memory | DuckDB stateful peer | peak memory | vs DuckDB | vs our stateless scan |"
  echo "|---|---|---|---|---|---|---|"
  for scan in "first:first, into an empty state" "repeat:repeat, same report" "changed:about 1% of findings changed"; do
    read -r s kb < <(summary "gw-${scan%%:*}")
    read -r d dkb < <(summary "duck-${scan%%:*}")
    awk -v n="${scan#*:}" -v s="$s" -v kb="$kb" -v d="$d" -v dkb="$dkb" -v g="$gw_s" \
      'BEGIN { printf "| %s | %.2f s | %.0f MiB | %.2f s | %.0f MiB | %.2f× | %.2f× |\n", n, s, kb / 1024, d, dkb / 1024, s / d, s / g }'
  done
  echo
  echo "(state file after the first scan: $state_mb MB; DuckDB's: $(du -m "$work/duck-base.duckdb" | cut -f1) MB)"
fi
echo
echo "($rows rows, $(du -m "$report" | cut -f1) MB, $(nproc) cores; load before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg); report: $report)"
