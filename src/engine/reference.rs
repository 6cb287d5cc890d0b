//! The rule writer's reference, generated from the tables the engine
//! runs on ([`COLUMNS`], [`DERIVED_PROPERTIES`], [`SUMMARY_PROPERTIES`],
//! the test defaults), so the documentation cannot drift from the code:
//! `groupwarden rules fields` prints it, and a test checks that
//! `docs/writing-rules.md` holds exactly this text.

use std::fmt::Write;

use super::config::Limits;
use super::ruletest::test_default;
use super::sandbox::{DERIVED_PROPERTIES, rhai_type};
use super::tenant::{SUMMARY_METHODS, SUMMARY_PROPERTIES};
use crate::report::header::{COLUMNS, Col, Kind};

/// The reference as Markdown.
pub(crate) fn markdown() -> String {
    let mut out = String::new();
    out.push_str("### Row fields\n\n");
    out.push_str(
        "Columns of the report, as `row.<field>` (or `row[\"Header\"]`). A blank cell is `()`.\n\n",
    );
    out.push_str("| field | type | report header | description | example | test default |\n|---|---|---|---|---|---|\n");
    for (column, &col) in COLUMNS.iter().zip(Col::ALL) {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | `{}` | {} |",
            column.field,
            rhai_type(column.kind),
            column.header,
            cell(column.doc),
            column.example,
            test_default_literal(col, column.kind)
        );
    }
    out.push_str("\n### Derived row properties\n\n");
    out.push_str("| property | type | description | example |\n|---|---|---|---|\n");
    for (name, kind, doc, example) in DERIVED_PROPERTIES {
        let _ = writeln!(out, "| `{name}` | {kind} | {} | `{example}` |", cell(doc));
    }
    out.push_str("\n### Tenant summary properties\n\n");
    out.push_str("What `fn tenant(summary, params)` reads as `summary.<property>`.\n\n");
    out.push_str("| property | type | description | example |\n|---|---|---|---|\n");
    for property in SUMMARY_PROPERTIES {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | `{}` |",
            property.name,
            property.kind,
            cell(property.doc),
            property.example
        );
    }
    out.push_str("\n| method | returns | description | example |\n|---|---|---|---|\n");
    for (call, returns, doc, example) in SUMMARY_METHODS {
        let _ = writeln!(
            out,
            "| `{call}` | {returns} | {} | `{example}` |",
            cell(doc)
        );
    }
    out.push_str(&limits_table());
    out
}

fn limits_table() -> String {
    let limits = Limits::default();
    let rows = [
        (
            "operations per rule per row (or per tenant call)",
            limits.max_operations.to_string(),
            "`[rules] max_operations`",
        ),
        (
            "nested function calls",
            limits.max_call_levels.to_string(),
            "no",
        ),
        (
            "string length (bytes)",
            limits.max_string_size.to_string(),
            "no",
        ),
        ("array length", limits.max_array_size.to_string(), "no"),
        ("map size", limits.max_map_size.to_string(), "no"),
        (
            "wall time per rule per row",
            crate::duration::ConfigDuration(limits.max_time_per_row).to_string(),
            "`[rules] max_time_per_row`",
        ),
        (
            "findings per rule per row (more: the row is a rule error)",
            limits.max_findings_per_row.to_string(),
            "`[rules] max_findings_per_row`",
        ),
        (
            "rows in a row over a limit before the rule is disabled for the rest of the scan",
            limits.disable_after_limit_errors.to_string(),
            "`[rules] disable_after_limit_errors` (0: never)",
        ),
        (
            "`print`/`debug` lines shown per rule per scan",
            limits.max_print_lines_per_rule.to_string(),
            "no",
        ),
        (
            "`print`/`debug` lines shown per scan",
            limits.max_print_lines_per_scan.to_string(),
            "no",
        ),
        (
            "characters of one `print`/`debug` line shown",
            limits.max_print_chars.to_string(),
            "no",
        ),
    ];
    let mut out =
        String::from("\n### Sandbox limits\n\n| limit | default | configurable |\n|---|---|---|\n");
    for (what, value, configurable) in rows {
        let _ = writeln!(out, "| {what} | {value} | {configurable} |");
    }
    out
}

/// A test row's default as the script sees it.
fn test_default_literal(col: Col, kind: Kind) -> String {
    let Some(text) = test_default(col, 1) else {
        return "absent".to_owned();
    };
    match kind {
        Kind::Text | Kind::Date => format!("`{text:?}`"),
        Kind::Bool => format!("`{}`", text.to_ascii_lowercase()),
        Kind::Int => format!("`{text}`"),
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_field_and_property_once_in_its_table() {
        let text = markdown();
        let sections: Vec<&str> = text.split("### ").collect();
        let tables: [(&str, Vec<&str>); 3] = [
            ("Row fields", COLUMNS.iter().map(|c| c.field).collect()),
            (
                "Derived row properties",
                DERIVED_PROPERTIES.iter().map(|d| d.0).collect(),
            ),
            (
                "Tenant summary properties",
                SUMMARY_PROPERTIES.iter().map(|p| p.name).collect(),
            ),
        ];
        for (title, names) in tables {
            let section = sections.iter().find(|s| s.starts_with(title)).unwrap();
            assert_eq!(
                section.lines().filter(|l| l.starts_with("| `")).count(),
                names.len()
                    + if title.starts_with("Tenant") {
                        SUMMARY_METHODS.len()
                    } else {
                        0
                    }
            );
            for name in names {
                assert_eq!(
                    section.matches(&format!("| `{name}` |")).count(),
                    1,
                    "{title}: {name}"
                );
            }
        }
        assert!(text.contains("| `group_display_name` | string or () | Group Display Name |"));
        assert!(text.contains("| `\"Test Group\"` |"));
    }
}
