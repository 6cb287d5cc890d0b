//! Reports in the shapes people keep them (fixtures in `tests/data/shapes/`,
//! written by its `make.py` from `plain.csv` as each tool saves a file) give
//! exactly the plain CSV's findings; what is not a report is refused with
//! exit 2 and a message naming what was found.

use std::path::PathBuf;

use serde_json::Value;

use crate::util::{bundled_rules, findings, gw, root, stderr};

fn fixture(name: &str) -> PathBuf {
    root().join("tests/data/shapes").join(name)
}

/// The findings of a stateless scan, without `line` (a `#TYPE` line or
/// JSON's items put rows on other lines than in the plain CSV).
fn scan(path: &PathBuf, extra: &[&str]) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = gw(dir.path())
        .args(["scan", "--no-state", "--format", "jsonl", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut found = findings(&output);
    for finding in &mut found {
        finding.as_object_mut().unwrap().remove("line");
    }
    (found, stderr(&output))
}

#[test]
fn every_shape_gives_the_plain_csvs_findings() {
    let (expected, _) = scan(&fixture("plain.csv"), &[]);
    assert!(expected.len() >= 5, "{expected:?}");
    for (name, shape) in [
        (
            "powershell-out-file-utf16le.csv",
            "UTF-16LE CSV separated by ','",
        ),
        ("utf16be-bom.csv", "UTF-16BE CSV separated by ','"),
        ("utf8-no-bom-lf.csv", ""),
        ("excel-semicolon.csv", "UTF-8 CSV separated by ';'"),
        ("excel-unicode-text.txt", "UTF-16LE CSV separated by tab"),
        ("powershell-export-csv.csv", "a #TYPE line first"),
        ("excel-mac-cr.csv", "lines ended by CR"),
        ("graph-beta-page.json", "UTF-8 JSON"),
        ("convertto-json-array.json", "UTF-8 JSON"),
    ] {
        let (found, log) = scan(&fixture(name), &[]);
        assert_eq!(found, expected, "{name}");
        assert!(log.contains(shape), "{name}: {log}");
        assert!(log.contains("0 row errors"), "{name}: {log}");
    }
}

#[test]
fn the_format_is_told_by_content_not_by_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let disguised = dir.path().join("report.csv");
    std::fs::copy(fixture("graph-beta-page.json"), &disguised).unwrap();
    let (expected, _) = scan(&fixture("plain.csv"), &[]);
    let (found, _) = scan(&disguised, &[]);
    assert_eq!(found, expected);
    // Forced to CSV, the JSON is no report: a clear failure, not exit 0.
    let output = gw(dir.path())
        .args(["scan", "--no-state", "--input-format", "csv", "--rules"])
        .arg(bundled_rules())
        .arg("--input")
        .arg(&disguised)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn what_is_not_a_report_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (bytes, says) in [
        (b"PK\x03\x04\x14\x00\x06\x00".to_vec(), "Excel workbook"),
        (b"\xff\xfe\x00\x00R\x00\x00\x00".to_vec(), "UTF-32"),
        (
            b"Report Refresh Date|Group Display Name|Is Deleted\n".to_vec(),
            "separated by '|'",
        ),
        (
            br#"{"value":[{"groupDisplayName":"A"}],"@odata.nextLink":"https://graph.microsoft.com/beta/x"}"#
                .to_vec(),
            "@odata.nextLink",
        ),
        (br#"[{"groupDisplayName":"A"},"#.to_vec(), "not valid JSON"),
        (
            b"Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Office 365 Connected,Member Count,Posted Count,Read Count,Liked Count,Report Period\n2026-11-25,A,False,,,Public,Yes,3,0,0,0,30\n"
                .to_vec(),
            "Viva Engage (Yammer) groups activity report (getYammerGroupsActivityDetail)",
        ),
    ] {
        let path = dir.path().join("input");
        std::fs::write(&path, &bytes).unwrap();
        let output = gw(dir.path())
            .args(["scan", "--no-state", "--rules"])
            .arg(bundled_rules())
            .arg("--input")
            .arg(&path)
            .output()
            .unwrap();
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{says}: {log}");
        assert!(log.contains(says), "{says}: {log}");
        assert!(!log.contains('\u{0}'), "{log}");
    }
}

#[test]
fn a_daily_report_is_not_read_as_every_group_inactive() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read_to_string(fixture("plain.csv")).unwrap();
    let daily = dir.path().join("daily.csv");
    std::fs::write(&daily, plain.replace(",30\r\n", ",1\r\n")).unwrap();
    let (found, log) = scan(&daily, &[]);
    assert!(
        found.iter().all(|f| f["rule"] != "inactive-groups"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| f["rule"] == "ownerless-groups"),
        "{found:?}"
    );
    assert!(log.contains("is a daily report (Report Period 1)"), "{log}");
}
