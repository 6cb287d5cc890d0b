//! Hostile reports never panic: property tests that feed the whole input
//! path (`shape::open` → `ReportReader` → `RowData::parse`) arbitrary
//! bytes and mutations of a real report, and check that it answers with
//! rows or errors, within its bounds. 256 cases by default;
//! `PROPTEST_CASES=100000 cargo test --lib report::fuzz` runs more. The
//! same path is a `cargo fuzz` target in `fuzz/` (see docs/architecture.md).

use std::io::{Cursor, Read};
use std::sync::Arc;

use proptest::prelude::*;

use super::reader::{MAX_RECORD_BYTES, Record, ReportReader};
use super::row::RowData;
use super::shape::{self, InputFormat};

/// Reads `bytes` as a report the way a scan does, to the end or the first
/// error; returns how many rows parsed and how many were bad.
pub(crate) fn read_all(bytes: &[u8]) -> (u64, u64) {
    let input: Box<dyn Read + Send> = Box::new(Cursor::new(bytes.to_vec()));
    let Ok((input, _)) = shape::open(input, "fuzz", InputFormat::Auto) else {
        return (0, 0);
    };
    let Ok(mut reader) = ReportReader::new(input, "fuzz") else {
        return (0, 0);
    };
    let mut row = RowData::empty(Arc::clone(reader.layout()));
    let mut record = Record::default();
    let (mut good, mut bad) = (0, 0);
    while let Ok(Some(line)) = reader.read_record(&mut record) {
        assert!(record.len() <= MAX_RECORD_BYTES, "a record over the cap");
        std::mem::swap(&mut row.record, &mut record);
        match row.parse(line) {
            Ok(()) => {
                good += 1;
                // What rules and keys read must not panic either.
                let _ = row.group_key();
                let _ = row.days_since_activity();
                let _ = row.total_storage_bytes();
            }
            Err(_) => bad += 1,
        }
    }
    (good, bad)
}

const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Mailbox Storage Used (Byte),Group Id,Report Period\r\n";
const ROW: &str = "2026-11-25,\"Sales, EMEA\",False,o@contoso.com,2026-10-01,Private,5,1,1000,11111111-2222-3333-4444-555555555555,30\r\n";

/// A real report with bytes flipped, cut, inserted or removed.
fn mutated_report() -> impl Strategy<Value = Vec<u8>> {
    let base = format!("\u{feff}{HEADER}{ROW}{ROW}{ROW}").into_bytes();
    let len = base.len();
    (
        Just(base),
        prop::collection::vec((0..len, any::<u8>(), 0u8..4), 1..12),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, kind) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match kind {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(crate::test_support::proptest_config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        read_all(&bytes);
    }

    #[test]
    fn mutated_reports_never_panic(bytes in mutated_report()) {
        read_all(&bytes);
    }

    #[test]
    fn shapes_of_a_report_never_panic(
        separator in prop::sample::select(vec![",", ";", "\t", "|"]),
        utf16 in any::<bool>(),
        json in any::<bool>(),
        cells in prop::collection::vec("[ -~]{0,12}", 0..30),
    ) {
        let bytes = if json {
            let body: Vec<String> = cells
                .chunks(3)
                .map(|c| format!("{{\"groupDisplayName\":{:?},\"memberCount\":{:?}}}", c.concat(), c.len()))
                .collect();
            format!("[{}]", body.join(",")).into_bytes()
        } else {
            let text = format!(
                "{}{}\r\n",
                HEADER.replace(',', separator),
                cells.join(separator)
            );
            if utf16 {
                "\u{feff}".encode_utf16().chain(text.encode_utf16()).flat_map(u16::to_le_bytes).collect()
            } else {
                text.into_bytes()
            }
        };
        read_all(&bytes);
    }
}

#[test]
fn a_real_report_reads_whole() {
    assert_eq!(read_all(format!("{HEADER}{ROW}{ROW}").as_bytes()), (2, 0));
}
