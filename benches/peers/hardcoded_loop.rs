//! The practical limit: the four bundled rules hard-coded in Rust over the
//! `csv` crate, one thread, findings written as JSON lines. Not a product
//! (no rule files, no row errors, no state): the floor `groupwarden scan`
//! is measured against.
//!
//!   cargo build --release --example hardcoded-loop
//!   target/release/examples/hardcoded-loop REPORT.csv OUT.jsonl
//!
//! `scripts/bench-vs-peers.sh` runs it beside groupwarden and the peers.

use std::fs::File;
use std::io::{BufWriter, Write};

use serde::Serialize;

#[derive(Serialize)]
struct Finding<'a> {
    rule: &'static str,
    group_id: &'a str,
    group_name: &'a str,
    message: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        return Err("usage: hardcoded-loop REPORT.csv OUT.jsonl".into());
    };
    let mut reader = csv::ReaderBuilder::new().from_path(input)?;
    let headers = reader.byte_headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.strip_prefix("\u{feff}".as_bytes()).unwrap_or(h) == name.as_bytes())
            .ok_or_else(|| format!("no column {name}"))
    };
    let refresh = column("Report Refresh Date")?;
    let name = column("Group Display Name")?;
    let deleted = column("Is Deleted")?;
    let owner = column("Owner Principal Name")?;
    let last = column("Last Activity Date")?;
    let external = column("External Member Count")?;
    let members = column("Member Count")?;
    let mailbox = column("Exchange Mailbox Storage Used (Byte)")?;
    let site = column("SharePoint Site Storage Used (Byte)")?;
    let id = column("Group Id")?;

    let mut out = BufWriter::with_capacity(256 * 1024, File::create(output)?);
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        let text = |i: usize| std::str::from_utf8(record[i].trim_ascii()).unwrap_or("");
        let int = |i: usize| text(i).parse::<i64>().ok();
        let is_deleted = text(deleted).eq_ignore_ascii_case("true");
        let mut emit = |rule: &'static str, message: String| -> std::io::Result<()> {
            let finding = Finding {
                rule,
                group_id: text(id),
                group_name: text(name),
                message,
            };
            serde_json::to_writer(&mut out, &finding)?;
            out.write_all(b"\n")
        };
        if is_deleted {
            let bytes = match (int(mailbox), int(site)) {
                (None, None) => None,
                (m, s) => Some(m.unwrap_or(0) + s.unwrap_or(0)),
            };
            if let Some(bytes) = bytes.filter(|&b| b >= 1) {
                emit(
                    "deleted-with-storage",
                    format!("Deleted but still holds {bytes} bytes"),
                )?;
            }
            continue;
        }
        if let Some(guests) = int(external).filter(|&g| g >= 10) {
            let members = int(members).unwrap_or(0);
            emit(
                "high-external-members",
                format!("{guests} external members of {members} members"),
            )?;
        }
        match (day(text(last)), day(text(refresh))) {
            (Some(last), Some(refresh)) if refresh - last >= 90 => emit(
                "inactive-groups",
                format!("No activity for {} days", refresh - last),
            )?,
            (None, _) => emit("inactive-groups", "No activity in the whole period".into())?,
            _ => {}
        }
        if text(owner).is_empty() {
            emit("ownerless-groups", "The group has no owner".into())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    Some(era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468)
}
