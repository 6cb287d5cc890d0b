//! Emails people can act on, as a mail server receives them: the owner
//! message of a real scan (subject with the tenant's name, the rule's
//! title and help, figures in words, the group's id and admin-center link,
//! how to ask for an exemption, standard headers); a 3,000-group digest
//! with hostile names that stays under Gmail's clipping size with every
//! rule's true total and the full list attached as CSV (SMTP and Graph
//! sendMail); and the HTML laid out for a phone, measured in headless
//! Chromium at 375 px.
//!
//! The SMTP tests need Python's `aiosmtpd`; the browser test needs
//! Chromium (see `html_report.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::notify::SmtpSink;
use crate::util::*;

/// A folder with `groupwarden.toml` holding `config`.
fn folder(config: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "groupwarden.toml", config);
    dir
}

fn parse(raw: &str) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a MIME message")
}

/// The decoded text of the first part of `content_type`.
fn part_text(raw: &str, content_type: &str) -> String {
    let message = parse(raw);
    let (ctype, subtype) = content_type.split_once('/').unwrap();
    let part = message
        .parts
        .iter()
        .find(|part| mail_parser::MimeHeaders::is_content_type(*part, ctype, subtype))
        .unwrap_or_else(|| panic!("no {content_type} part"));
    part.text_contents().expect("a text part").to_owned()
}

/// Every attachment: (file name, decoded bytes).
fn attachments(raw: &str) -> Vec<(String, Vec<u8>)> {
    let message = parse(raw);
    message
        .attachments()
        .map(|part| {
            let name = mail_parser::MimeHeaders::attachment_name(part)
                .unwrap()
                .to_owned();
            (name, part.contents().to_vec())
        })
        .collect()
}

fn header(raw: &str, name: &str) -> Option<String> {
    parse(raw)
        .header_raw(name)
        .map(|value| value.trim().to_owned())
}

// ------------------------------------------------------------ owner email

const OWNER: &str = "adele.vance@contoso.com";
const GROUP_ID: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";

#[test]
fn an_owner_email_says_what_to_do_about_which_group() {
    let sink = SmtpSink::start(0, None);
    let dir = folder(&format!(
        r#"[source]
type = "file"
path = "r.csv"
tenant_name = "Contoso Ltd"

[rules]
dir = "{rules}"

[state]
path = "gw.db"

[[notify]]
name = "owners"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "groupwarden <alerts@contoso.com>"
to = "group-owners"
exemption_contact = "m365-admins@contoso.com"
retries = 0
"#,
        rules = bundled_rules().display(),
        port = sink.port,
    ));
    write(
        dir.path(),
        "r.csv",
        &report(&[Group {
            name: "Project <Phoenix> & Co",
            owner: OWNER,
            last_activity: "2025-10-09",
            members: "20",
            external: "12",
            mailbox_bytes: "2100000000",
            id: GROUP_ID,
            ..Default::default()
        }
        .csv()]),
    );

    let output = gw(dir.path())
        .args(["scan", "--input", "r.csv", "--format", "jsonl"])
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(2), "{}", stderr(&output));

    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one message for the one owner");
    assert_eq!(messages[0]["rcpt_tos"], json!([OWNER]));
    let raw = messages[0]["data"].as_str().unwrap();

    let subject = parse(raw).subject().unwrap().to_owned();
    assert_eq!(
        subject,
        "[groupwarden] Contoso Ltd: 1 group needs attention"
    );
    assert!(!subject.contains("r.csv"));

    // Standard headers, as the server received them.
    let message_id = header(raw, "Message-ID").expect("a Message-ID");
    assert!(
        message_id.starts_with("<gw-") && message_id.ends_with("@groupwarden>"),
        "{message_id}"
    );
    let date = header(raw, "Date").expect("a Date header");
    assert!(parse(raw).date().is_some(), "Date parses: {date}");
    assert_eq!(header(raw, "Auto-Submitted").unwrap(), "auto-generated");
    assert_eq!(
        header(raw, "List-Id").unwrap(),
        "groupwarden <groupwarden.contoso.com>"
    );

    let link = format!(
        "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/GroupDetailsMenuBlade/~/Overview/groupId/{GROUP_ID}"
    );
    let plain = part_text(raw, "text/plain");
    let html = part_text(raw, "text/html");
    for body in [&plain, &html] {
        // Both bundled rules that fire, by title, with their help.
        assert!(body.contains("Inactive groups"), "{body}");
        assert!(body.contains("Groups with many external members"), "{body}");
        assert!(
            body.contains("Nobody has used the group's mail, files or site for a long time.")
                || body.contains(
                    "Nobody has used the group&#x27;s mail, files or site for a long time."
                ),
            "the rule's HELP: {body}"
        );
        assert!(body.contains(GROUP_ID), "the group id: {body}");
        assert!(
            body.contains("last activity 412 days ago (on 2025-10-09)"),
            "{body}"
        );
        assert!(body.contains("12 external members"), "{body}");
        assert!(body.contains("20 members"), "{body}");
        assert!(body.contains("m365-admins@contoso.com"), "{body}");
        assert!(body.contains("to exempt it"), "{body}");
        assert!(body.contains("a reason and"), "{body}");
        // Evidence names are not shown raw.
        assert!(!body.contains("days_since_activity"), "{body}");
        assert!(!body.contains("external_member_count"), "{body}");
    }
    assert!(plain.contains(&link), "{plain}");
    assert!(plain.contains("Project <Phoenix> & Co"), "{plain}");
    assert!(
        html.contains(&format!("href=\"{}\"", link.replace('/', "&#x2f;")))
            || html.contains(&format!("href=\"{link}\"")),
        "{html}"
    );
    assert!(html.contains("Project &lt;Phoenix&gt; &amp; Co"), "{html}");
    assert!(
        html.contains("href=\"mailto:m365-admins@contoso.com\""),
        "{html}"
    );
    assert!(!html.to_lowercase().contains("reopened"));
}

// ---------------------------------------------- a large, hostile digest

const RULES: [(&str, &str, &str, usize); 4] = [
    (
        "high-external-members",
        "high",
        "Groups with many external members",
        400,
    ),
    ("ownerless-groups", "medium", "Ownerless groups", 600),
    ("inactive-groups", "medium", "Inactive groups", 1700),
    (
        "deleted-with-storage",
        "low",
        "Deleted groups still holding storage",
        300,
    ),
];

/// A group name made of markup, formula starters and a long tail.
fn hostile_name(n: usize) -> String {
    let starts = [
        "=HYPERLINK(\"http://evil\",\"x\")",
        "<script>alert(1)</script>",
        "+cmd|'/C calc'!A0",
        "\"><img src=x onerror=alert(1)>",
        "@SUM(1+1)",
    ];
    format!("{} {n} {}", starts[n % starts.len()], "&<>\"'W".repeat(40))
}

/// 3,000 new findings on four rules, 150 exemptions expiring soon.
fn large_digest() -> Value {
    let mut items = Vec::new();
    let mut n = 0;
    for (rule, severity, _, count) in RULES {
        for _ in 0..count {
            items.push(json!({
                "status": "new", "key": format!("{rule}:{n}"), "rule": rule, "severity": severity,
                "group_id": format!("{n:08x}-0000-4000-8000-000000000000"),
                "group_name": hostile_name(n),
                "owner": format!("owner{}@contoso.com", n % 50),
                "message": format!("No activity for {} days {}", 90 + n % 400, "<b>&amp;</b>".repeat(10)),
                "evidence": {"days_since_activity": 90 + n % 400, "external_member_count": n % 30, "total_storage_bytes": n * 1_000_000},
                "first_seen": "2026-10-01"
            }));
            n += 1;
        }
    }
    let exemptions: Vec<Value> = (0..150)
        .map(|i| {
            json!({"rule": "inactive-groups", "group": hostile_name(i), "reason": format!("Legal hold {i} {}", "<&>".repeat(30)), "expires": "2026-12-01"})
        })
        .collect();
    let rules: serde_json::Map<String, Value> = RULES
        .iter()
        .map(|(rule, _, title, _)| {
            (
                rule.to_string(),
                json!({"title": title, "help": format!("What to do about {title}.")}),
            )
        })
        .collect();
    json!({
        "scan": {"source": "groups-report.csv", "report_refresh_date": "2026-11-25", "report_period": 30,
                 "scanned_at": "2026-11-26T06:00:00Z", "rows": 3000},
        "counts": {"new": 3000, "reopened": 0, "reminders": 0, "resolved": 0, "exempted": 0, "expiring_exemptions": 150},
        "items": items,
        "expiring_exemptions": exemptions,
        "rules": rules,
    })
}

fn admin_email(port: u16, extra: &str) -> String {
    format!(
        r#"[source]
type = "file"
path = "r.csv"
tenant_name = "Contoso"

[[notify]]
name = "admins"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "alerts@contoso.com"
to = ["m365-admins@contoso.com"]
retries = 0
{extra}
"#
    )
}

/// The rows of a CSV attachment (after its byte order mark).
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).unwrap();
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a UTF-8 byte order mark");
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// Checks one received large digest: HTML size, true totals, the CSV.
fn check_large_digest(subject: &str, html: &str, files: &[(String, Vec<u8>)]) {
    assert_eq!(
        subject,
        "[groupwarden] Contoso: 3000 new, 150 expiring exemptions"
    );
    assert!(
        html.len() < 100_000,
        "the HTML part is {} bytes, Gmail clips above ~102 KB",
        html.len()
    );
    for (_, _, title, count) in RULES {
        assert!(html.contains(title), "rule {title} is named");
        assert!(
            html.contains(&format!("{count} findings on {count} groups")),
            "{title}'s true total {count}"
        );
    }
    assert!(!html.contains("<script>alert"), "names are escaped");
    assert!(!html.contains("<img src=x"), "names are escaped");
    assert!(
        html.contains("All 3000 findings are in the attached groupwarden-findings-2026-11-25.csv")
    );

    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "groupwarden-findings-2026-11-25.csv",
            "groupwarden-expiring-exemptions-2026-11-25.csv"
        ]
    );
    let rows = csv_rows(&files[0].1);
    assert_eq!(rows.len(), 3000, "every finding is in the CSV");
    for row in &rows {
        assert!(
            !row.iter()
                .any(|cell| cell.starts_with(['=', '+', '-', '@'])),
            "no cell starts a formula: {row:?}"
        );
    }
    let formula = rows
        .iter()
        .find(|row| row[4].contains("HYPERLINK"))
        .expect("a hostile name");
    assert!(formula[4].starts_with("'=HYPERLINK("), "{formula:?}");
    assert_eq!(rows[0][3], "Groups with many external members");
    assert_eq!(csv_rows(&files[1].1).len(), 150);
}

#[test]
fn a_3000_group_hostile_digest_stays_small_with_true_totals_and_a_csv() {
    let sink = SmtpSink::start(0, None);
    let dir = folder(&admin_email(sink.port, ""));
    write(dir.path(), "digest.json", &large_digest().to_string());
    let output = gw(dir.path())
        .args(["notify", "--digest", "digest.json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let raw = messages[0]["data"].as_str().unwrap();
    let message = parse(raw);
    // multipart/mixed holding multipart/alternative (text, HTML), then the files.
    let root = message.root_part();
    assert!(mail_parser::MimeHeaders::is_content_type(
        root,
        "multipart",
        "mixed"
    ));
    assert!(
        message
            .parts
            .iter()
            .any(|p| mail_parser::MimeHeaders::is_content_type(p, "multipart", "alternative"))
    );
    let html = part_text(raw, "text/html");
    check_large_digest(message.subject().unwrap(), &html, &attachments(raw));
    // However many fit, each rule's listed and unlisted findings add up to its total.
    let plain = part_text(raw, "text/plain");
    for (_, _, title, count) in RULES {
        let section = plain.split(&format!("== {title} ")).nth(1).unwrap();
        let section = section.split("\n== ").next().unwrap();
        let listed = section.matches("\n* [new] ").count();
        assert!(listed > 0, "{title}: some findings are listed");
        assert!(
            section.contains(&format!(
                "... and {} more, in the attachment.",
                count - listed
            )),
            "{title}: {listed} listed of {count}"
        );
    }
}

#[test]
fn an_attachment_over_its_limit_is_cut_and_the_body_says_so() {
    let sink = SmtpSink::start(0, None);
    let dir = folder(&admin_email(
        sink.port,
        "max_attachment_bytes = 50000\nmax_listed_per_rule = 3",
    ));
    write(dir.path(), "digest.json", &large_digest().to_string());
    let output = gw(dir.path())
        .args(["notify", "--digest", "digest.json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let raw = sink.messages()[0]["data"].as_str().unwrap().to_owned();
    let files = attachments(&raw);
    assert!(files[0].1.len() <= 50_000);
    let rows = csv_rows(&files[0].1).len();
    assert!(rows > 10 && rows < 3000, "{rows}");
    let html = part_text(&raw, "text/html");
    assert!(
        html.contains(&format!(
            "lists the first {rows} of 3000 findings: the whole list is larger than the attachment limit (50.0 KB)"
        )),
        "{html}"
    );
    assert!(
        html.contains("and 1697 more, in the attachment"),
        "3 listed per rule"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_mail_sends_the_csv_as_a_file_attachment() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/alerts@contoso.com/sendMail"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&graph)
        .await;
    let dir = folder(&format!(
        r#"[source]
type = "file"
path = "r.csv"
tenant_name = "Contoso"

[[notify]]
name = "admins"
type = "graph-mail"
from = "alerts@contoso.com"
graph_url = "{}"
to = ["m365-admins@contoso.com"]
retries = 0
"#,
        graph.uri()
    ));
    write(dir.path(), "digest.json", &large_digest().to_string());
    let mut command = gw(dir.path());
    command
        .args(["notify", "--digest", "digest.json"])
        .env("GROUPWARDEN_GRAPH_TOKEN", "test-token");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let requests = graph.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let message = &body["message"];
    let files: Vec<(String, Vec<u8>)> = message["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|file| {
            assert_eq!(file["@odata.type"], "#microsoft.graph.fileAttachment");
            assert_eq!(file["contentType"], "text/csv; charset=utf-8");
            let bytes = base64::prelude::BASE64_STANDARD
                .decode(file["contentBytes"].as_str().unwrap())
                .unwrap();
            (file["name"].as_str().unwrap().to_owned(), bytes)
        })
        .collect();
    check_large_digest(
        message["subject"].as_str().unwrap(),
        message["body"]["content"].as_str().unwrap(),
        &files,
    );
}

// ------------------------------------------------------- on a phone

/// Chromium, or `None` to skip (a missing browser fails under `CI`).
fn chromium() -> Option<PathBuf> {
    let candidates = std::env::var_os("GROUPWARDEN_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(PathBuf::from));
    for candidate in candidates {
        let found = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("CI is set but no Chromium was found: `apt-get install -y chromium`");
    }
    eprintln!("SKIPPED: no Chromium on PATH; the phone-width test did not run");
    None
}

/// Headless Chromium, offline, a fresh profile, a 375x812 window.
fn chromium_at_phone_width(browser: &Path, args: &[String]) -> String {
    let profile = TempDir::new().unwrap();
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=375,812",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("starting Chromium");
    assert!(
        output.status.success(),
        "Chromium exited with {}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The page's widths in a 375x812 frame, as a phone shows it: (viewport,
/// document, the widest element's right edge), measured by a page that
/// frames the email (headless Chromium's window is at least 500 px wide,
/// a frame can be narrower and its media queries see its own width).
fn widths(browser: &Path, html: &Path) -> (i64, i64, i64) {
    let name = html.file_name().unwrap().to_str().unwrap();
    let probe = format!(
        "<!DOCTYPE html><html><body style=\"margin:0\"><iframe id=\"phone\" src=\"{name}\" style=\"width:375px;height:812px;border:0\"></iframe>\
         <script>document.getElementById('phone').onload=function(){{var w=this.contentWindow,d=this.contentDocument,r=0;\
         d.querySelectorAll('body *').forEach(function(e){{r=Math.max(r,e.getBoundingClientRect().right)}});\
         document.body.setAttribute('data-widths',[w.innerWidth,d.documentElement.scrollWidth,Math.ceil(r)].join(','))}}</script></body></html>"
    );
    let frame = html.with_file_name(format!("probe-{name}"));
    std::fs::write(&frame, probe).unwrap();
    let url = format!("file://{}", frame.canonicalize().unwrap().display());
    let dom = chromium_at_phone_width(
        browser,
        &[
            "--allow-file-access-from-files".to_owned(),
            "--dump-dom".to_owned(),
            url,
        ],
    );
    let widths = dom
        .split("data-widths=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the probe did not run: {dom:.500}"));
    let numbers: Vec<i64> = widths.split(',').map(|n| n.parse().unwrap()).collect();
    (numbers[0], numbers[1], numbers[2])
}

#[test]
fn emails_fit_a_phone_screen_without_sideways_scrolling() {
    let Some(browser) = chromium() else { return };
    let dir = folder(&format!(
        "{}\n[[notify]]\nname = \"owners\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\ntls = \"none\"\n\
         from = \"alerts@contoso.com\"\nto = \"group-owners\"\n",
        admin_email(1, "")
    ));
    write(dir.path(), "digest.json", &large_digest().to_string());
    let output = gw(dir.path())
        .args([
            "notify",
            "--digest",
            "digest.json",
            "--dry-run",
            "--out",
            "preview",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let admin = dir
        .path()
        .join("preview/001-admins-m365-admins@contoso.com.html");
    let owner = dir
        .path()
        .join("preview/002-owners-owner0@contoso.com.html");
    for page in [&admin, &owner] {
        let (viewport, scroll, right) = widths(&browser, page);
        assert_eq!(viewport, 375, "the window is a phone's width");
        assert!(
            scroll <= viewport && right <= viewport,
            "{}: the page is {scroll} px wide (widest element ends at {right} px) in a {viewport} px screen",
            page.display()
        );
    }
    // And a screenshot of the admin digest at that size, for a person to look at.
    let shot = dir.path().join("phone.png");
    let url = format!("file://{}", admin.canonicalize().unwrap().display());
    chromium_at_phone_width(&browser, &[format!("--screenshot={}", shot.display()), url]);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 375, "the screenshot is phone-wide");
}

// ------------------------------------------------------------------- docs

/// The code block of `language` in docs/notifications.md holding `marker`.
fn documented(language: &str, marker: &str) -> String {
    let docs = std::fs::read_to_string(root().join("docs/notifications.md")).unwrap();
    docs.split(&format!("```{language}\n"))
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .find(|code| code.contains(marker))
        .unwrap_or_else(|| panic!("no {language} block with {marker:?} in docs/notifications.md"))
}

#[test]
fn the_documented_tenant_name_and_owner_subject_are_what_is_sent() {
    let source = documented("toml", "tenant_name = \"Contoso\"");
    let dir = folder(&format!(
        "{source}\n[[notify]]\nname = \"owners\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\ntls = \"none\"\n\
         from = \"alerts@contoso.com\"\nto = \"group-owners\"\n"
    ));
    let item = |n: usize| {
        json!({"status": "new", "key": format!("inactive-groups:{n}"), "rule": "inactive-groups", "severity": "medium",
               "group_id": format!("{n:08x}-0000-4000-8000-000000000000"), "group_name": format!("Team {n}"),
               "owner": OWNER, "message": "No activity for 412 days", "evidence": {"days_since_activity": 412}})
    };
    let digest = json!({
        "scan": {"source": "groups.csv", "scanned_at": "2026-11-26T06:00:00Z", "rows": 2},
        "counts": {"new": 2, "reopened": 0, "reminders": 0, "resolved": 0, "exempted": 0, "expiring_exemptions": 0},
        "items": [item(1), item(2)],
    });
    write(dir.path(), "digest.json", &digest.to_string());
    let output = gw(dir.path())
        .args(["notify", "--digest", "digest.json", "--dry-run"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let subject = documented("", "groups need attention");
    assert!(
        stdout(&output).contains(&format!("Subject: {}", subject.trim())),
        "{}",
        stdout(&output)
    );
}
