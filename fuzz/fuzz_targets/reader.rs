//! Any bytes through the report reader and the row parser: rows or
//! errors, never a panic, never a record over the reader's cap.
#![no_main]

use std::sync::Arc;

use groupwarden::report::reader::{MAX_RECORD_BYTES, Record, ReportReader};
use groupwarden::report::row::RowData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut reader) = ReportReader::new(bytes, "fuzz") else {
        return;
    };
    let mut row = RowData::empty(Arc::clone(reader.layout()));
    let mut record = Record::default();
    while let Ok(Some(line)) = reader.read_record(&mut record) {
        assert!(record.len() <= MAX_RECORD_BYTES);
        std::mem::swap(&mut row.record, &mut record);
        if row.parse(line).is_ok() {
            let _ = row.group_key();
            let _ = row.days_since_activity();
        }
    }
});
