//! Throughput of each stage, in rows per second, on a synthetic report.
//!
//! `cargo bench --bench throughput [-- ROWS]` (default 200000 rows). Prints
//! the reader alone, each bundled rule alone on one thread (compiled, then
//! in the interpreter), and the whole scan (all rules, one thread and all
//! cores) with findings serialised as JSON lines into a sink. For the comparison with DuckDB and pandas on the same file, see
//! `scripts/bench-vs-peers.sh`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use groupwarden::engine::config::RulesConfig;
use groupwarden::engine::eval::Evaluator;
use groupwarden::engine::rule::RuleSet;
use groupwarden::engine::sandbox::build_engine;
use groupwarden::output::json::JsonLine;
use groupwarden::report::reader::Record;
use groupwarden::report::reader::ReportReader;
use groupwarden::report::row::RowData;
use groupwarden::report::stats::ReportStats;
use groupwarden::scan::{ScanEvent, ScanOptions, scan};

const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period";

/// A report shaped like `shared/bench/gen_report.py`'s: 3% deleted, 10%
/// never active, 6% ownerless, a fifth with guests.
fn synthetic(rows: usize) -> Vec<u8> {
    let mut out = format!("\u{feff}{HEADER}\r\n").into_bytes();
    let mut seed: u64 = 7;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..rows {
        let r = next();
        let deleted = r % 100 < 3;
        let last = if r % 10 == 0 {
            String::new()
        } else {
            format!("2026-{:02}-{:02}", 1 + (r >> 8) % 11, 1 + (r >> 16) % 25)
        };
        let owner = if (r >> 24) % 100 < 6 {
            String::new()
        } else {
            format!("user{}@contoso.com", (r >> 32) % 50_000)
        };
        let external = if (r >> 40) % 5 == 0 {
            (r >> 44) % 30
        } else {
            0
        };
        writeln!(
            out,
            "2026-11-25,\"Group {i}, {}\",{},{owner},{last},Private,{},{external},3,1,0,0,0,40,{},9,{},{:08x}-1111-4222-8333-444455556666,30\r",
            r % 977,
            if deleted { "True" } else { "False" },
            (r >> 48) % 60,
            (r >> 20) % 5_000_000,
            (r >> 12) % 900_000_000,
            i
        )
        .unwrap();
    }
    out
}

fn report(label: &str, rows: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label:<54} {:>12.0} rows/s  ({secs:.3} s)",
        rows as f64 / secs
    );
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let data = synthetic(rows);
    let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let engine = build_engine(&RulesConfig::default().limits());
    let rules =
        RuleSet::load(&engine, &rules_dir, &RulesConfig::default()).expect("bundled rules load");
    println!("{rows} synthetic rows, {} MB", data.len() / 1_000_000);

    let started = Instant::now();
    let mut reader = ReportReader::new(&data[..], "synthetic").unwrap();
    let mut record = Record::default();
    let mut row = RowData::empty(reader.layout().clone());
    let mut parsed = 0;
    while let Some(line) = reader.read_record(&mut record).unwrap() {
        std::mem::swap(&mut row.record, &mut record);
        parsed += usize::from(row.parse(line).is_ok());
    }
    assert_eq!(parsed, rows);
    report("reader + row parsing (1 thread)", rows, started);

    for (rule, fast_path) in rules
        .enabled()
        .flat_map(|rule| [(rule, true), (rule, false)])
    {
        let started = Instant::now();
        let mut reader = ReportReader::new(&data[..], "synthetic").unwrap();
        let mut evaluator =
            Evaluator::new(&engine, [rule], RowData::empty(reader.layout().clone()));
        evaluator.track_groups = false;
        evaluator.fast_path = fast_path;
        let mut chunk: Vec<(u64, Record)> = (0..512).map(|_| (0, Record::default())).collect();
        let mut stats = ReportStats::default();
        let mut items = Vec::new();
        loop {
            let mut filled = 0;
            while filled < chunk.len() {
                match reader.read_record(&mut chunk[filled].1).unwrap() {
                    Some(line) => chunk[filled].0 = line,
                    None => break,
                }
                filled += 1;
            }
            evaluator.evaluate_chunk(&mut chunk[..filled], &mut stats, &mut items);
            items.clear();
            if filled < chunk.len() {
                break;
            }
        }
        let path = if fast_path {
            "fast path"
        } else {
            "interpreter"
        };
        report(
            &format!("rule {} ({path}, 1 thread)", rule.id),
            rows,
            started,
        );
    }

    let all_cores = ScanOptions::default().threads;
    for (threads, fast_path) in [(1, true), (all_cores, true), (all_cores, false)] {
        let started = Instant::now();
        let reader = ReportReader::new(&data[..], "synthetic").unwrap();
        let options = ScanOptions {
            threads,
            strict: false,
            track_groups: false,
            fast_path,
            render: Some(&JsonLine),
            prerender: None,
            // As `scan` without tenant rules or an HTML page.
            full_stats: false,
        };
        let mut sink = std::io::sink();
        scan(reader, &engine, &rules, &options, &mut |event| {
            if let ScanEvent::Rendered { bytes, .. } = event {
                sink.write_all(bytes).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .unwrap();
        let path = if fast_path { "" } else { ", interpreter" };
        report(
            &format!("scan, 4 rules, jsonl ({threads} threads{path})"),
            rows,
            started,
        );
    }
}
