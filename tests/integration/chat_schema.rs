//! Chat messages checked against what the receivers themselves accept,
//! not against our docs: every Teams card against the official Adaptive
//! Card 1.5 JSON schema (`tests/fixtures/adaptive-card-1.5.0.schema.json`,
//! with Teams' `msteams` property allowed), every Slack message against
//! Slack's documented Block Kit limits ([`slack_violations`]); on small,
//! large and hostile digests, and once end to end: a real scan of 3,000
//! groups with hostile names and 150 exemptions expiring soon, delivered to
//! a webhook receiver on loopback.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use groupwarden::config::{LoadedConfig, parse};
use groupwarden::notify::render::Rendered;
use groupwarden::notify::{self, Digest};
use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::util::*;

// ------------------------------------------------------------ the checkers

/// Teams refuses a message over about 28 KB ("Request Entity too large").
const TEAMS_MAX_BYTES: usize = 28_000;

/// The Adaptive Card 1.5 schema, as published, with the `msteams`
/// property Teams adds to the card (`{"width": "Full"}`) allowed: the
/// schema's `AdaptiveCard` has `additionalProperties: false`.
fn card_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let text =
            std::fs::read_to_string(root().join("tests/fixtures/adaptive-card-1.5.0.schema.json"))
                .unwrap();
        let mut schema: Value = serde_json::from_str(&text).unwrap();
        schema["definitions"]["AdaptiveCard"]["properties"]["msteams"] = json!({
            "type": "object",
            "properties": {"width": {"enum": ["Full"]}},
            "additionalProperties": false
        });
        jsonschema::draft6::new(&schema).expect("the Adaptive Card schema compiles")
    })
}

/// What is wrong with a Teams webhook body: the envelope Teams' incoming
/// webhooks take, the size limit, and each card against the schema.
fn teams_violations(body: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if body.len() > TEAMS_MAX_BYTES {
        problems.push(format!("{} bytes, over {TEAMS_MAX_BYTES}", body.len()));
    }
    let message: Value = serde_json::from_str(body).unwrap();
    if message["type"] != "message" {
        problems.push(format!("type {} is not \"message\"", message["type"]));
    }
    let attachments = message["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if attachments.is_empty() {
        problems.push("no attachments".into());
    }
    for attachment in &attachments {
        if attachment["contentType"] != "application/vnd.microsoft.card.adaptive" {
            problems.push(format!("contentType {}", attachment["contentType"]));
        }
        let card = &attachment["content"];
        for error in card_validator().iter_errors(card) {
            problems.push(format!("schema: {error} at {}", error.instance_path()));
        }
    }
    problems
}

/// What breaks Slack's documented Block Kit limits in a message:
///
/// - at most 50 blocks in a message
///   (<https://api.slack.com/reference/block-kit/blocks>);
/// - a section's `text` at most 3,000 characters, its `fields` at most 10
///   of at most 2,000 characters each
///   (<https://api.slack.com/reference/block-kit/blocks#section>);
/// - a header's text `plain_text` of at most 150 characters
///   (<https://api.slack.com/reference/block-kit/blocks#header>);
/// - a context block at most 10 elements
///   (<https://api.slack.com/reference/block-kit/blocks#context>);
/// - a text object at most 3,000 characters, `block_id` at most 255
///   (<https://api.slack.com/reference/block-kit/composition-objects#text>);
/// - the top-level `text` (the notification fallback) truncated past
///   40,000 characters
///   (<https://api.slack.com/methods/chat.postMessage#truncating>);
/// - `&`, `<` and `>` escaped as `&amp;`, `&lt;`, `&gt;` in `mrkdwn` text
///   and in the fallback, where Slack reads `<…>` as links and mentions
///   (<https://api.slack.com/reference/surfaces/formatting#escaping>).
fn slack_violations(body: &str) -> Vec<String> {
    let message: Value = serde_json::from_str(body).unwrap();
    let mut problems = Vec::new();
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    match message["text"].as_str() {
        None => problems.push("no fallback text".into()),
        Some(text) => {
            if text.chars().count() > 40_000 {
                problems.push(format!(
                    "fallback text of {} characters",
                    text.chars().count()
                ));
            }
            problems.extend(slack_escaping("fallback text", text));
        }
    }
    let blocks = message["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.len() > 50 {
        problems.push(format!("{} blocks, over 50", blocks.len()));
    }
    for (n, block) in blocks.iter().enumerate() {
        let at = format!("block {n} ({})", block["type"]);
        if chars(&block["block_id"]) > 255 {
            problems.push(format!("{at}: block_id over 255"));
        }
        match block["type"].as_str().unwrap_or("") {
            "section" => {
                if block["text"].is_null() && block["fields"].is_null() {
                    problems.push(format!("{at}: neither text nor fields"));
                }
                if chars(&block["text"]["text"]) > 3_000 {
                    problems.push(format!(
                        "{at}: text of {} characters",
                        chars(&block["text"]["text"])
                    ));
                }
                let fields = block["fields"].as_array().cloned().unwrap_or_default();
                if fields.len() > 10 {
                    problems.push(format!("{at}: {} fields", fields.len()));
                }
                for field in &fields {
                    if chars(&field["text"]) > 2_000 {
                        problems.push(format!(
                            "{at}: a field of {} characters",
                            chars(&field["text"])
                        ));
                    }
                }
            }
            "header" => {
                if block["text"]["type"] != "plain_text" {
                    problems.push(format!("{at}: text is not plain_text"));
                }
                if chars(&block["text"]["text"]) > 150 {
                    problems.push(format!(
                        "{at}: {} characters",
                        chars(&block["text"]["text"])
                    ));
                }
            }
            "context" => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > 10 {
                    problems.push(format!("{at}: {} elements", elements.len()));
                }
                for element in &elements {
                    if chars(&element["text"]) > 3_000 {
                        problems.push(format!(
                            "{at}: an element of {} characters",
                            chars(&element["text"])
                        ));
                    }
                }
            }
            "divider" => {}
            other => problems.push(format!(
                "{at}: a block type this checker does not know: {other}"
            )),
        }
    }
    let mut mrkdwn = Vec::new();
    mrkdwn_texts(&message["blocks"], &mut mrkdwn);
    for text in &mrkdwn {
        problems.extend(slack_escaping("mrkdwn text", text));
    }
    problems
}

/// Every `mrkdwn` text object's text, wherever it is nested.
fn mrkdwn_texts(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("mrkdwn")
                && let Some(text) = map.get("text").and_then(Value::as_str)
            {
                into.push(text.to_owned());
            }
            map.values().for_each(|v| mrkdwn_texts(v, into));
        }
        Value::Array(values) => values.iter().for_each(|v| mrkdwn_texts(v, into)),
        _ => {}
    }
}

/// `<`, `>` or an `&` that does not start Slack's three entities.
fn slack_escaping(what: &str, text: &str) -> Option<String> {
    let raw_amp = text.match_indices('&').any(|(at, _)| {
        !["&amp;", "&lt;", "&gt;"]
            .iter()
            .any(|entity| text[at..].starts_with(entity))
    });
    (raw_amp || text.contains(['<', '>'])).then(|| format!("{what} not escaped: {text:?}"))
}

/// Every `"text"` string of a payload, wherever it is nested.
fn texts(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(text) if key == "text" => into.push(text.clone()),
                    _ => texts(value, into),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| texts(v, into)),
        _ => {}
    }
}

/// The texts of a payload joined by lines, with Teams' Markdown escapes
/// and Slack's bold markers taken out, to read headings as a person does.
fn readable(body: &str) -> String {
    let mut found = Vec::new();
    texts(&serde_json::from_str(body).unwrap(), &mut found);
    found
        .join("\n")
        .replace("\\-", "-")
        .replace("\\_", "_")
        .replace('*', "")
}

/// No text of a Teams card can become a link: no Markdown link, no
/// autolinked URL.
fn teams_links(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    texts(&serde_json::from_str(body).unwrap(), &mut found);
    found
        .into_iter()
        .filter(|t| {
            t.contains("](") || t.contains("://") || t.contains("www.") || t.contains("<http")
        })
        .collect()
}

// ------------------------------------------------------------- the digests

/// Names an ordinary user may give a group, each meant to break a format.
const HOSTILE: &[&str] = &[
    "[Reset your password](https://evil.example/login)",
    "*_~`[]()` \\ *bold* _it_ ~strike~ `code`",
    "<b>html</b> <a href=\"https://evil.example\">x</a> <!channel> <@U123> R&D",
    "bell\u{7} esc\u{1b}[2J nul-ish\u{1} tab\tnewline\nend",
    "right-to-left \u{202e}gnp.exe\u{202c} \u{200f}mark",
    "www.evil.example and http://evil.example/x?a=1&b=2",
    "# heading\n- list\n> quote\n1. one",
    "Smith & Sons <ops> \"quoted\" 'single'",
];

fn hostile_name(n: usize) -> String {
    let base = HOSTILE[n % HOSTILE.len()];
    if n.is_multiple_of(97) {
        // A very long name.
        format!("{base} {}", "Ünïcödé long name ".repeat(300))
    } else {
        format!("{base} #{n}")
    }
}

fn item(
    n: usize,
    rule: &str,
    severity: &str,
    status: &str,
    name: &str,
    owner: Option<&str>,
) -> Value {
    json!({
        "status": status, "key": format!("{rule}:g{n}"), "rule": rule, "severity": severity,
        "group_id": format!("g{n}"), "group_name": name, "owner": owner,
        "message": format!("No activity for {} days; `{name}`", 90 + n % 300),
        "evidence": {"days_since_activity": 90 + n % 300, "last_activity": null},
        "first_seen": "2026-10-01"
    })
}

fn digest_value(items: Vec<Value>, exemptions: Vec<Value>, tenant: &str, source: &str) -> Value {
    json!({
        "scan": {
            "tenant": tenant, "source": source, "report_refresh_date": "2026-11-25",
            "report_period": 180, "scanned_at": "2026-11-26T06:00:00Z", "rows": 3000
        },
        "counts": {"new": items.len(), "reopened": 0, "reminders": 0, "resolved": 0, "exempted": 0,
                   "expiring_exemptions": exemptions.len()},
        "items": items,
        "expiring_exemptions": exemptions
    })
}

fn small() -> Digest {
    let items = vec![
        item(
            1,
            "ownerless-groups",
            "high",
            "new",
            "Project Phoenix",
            None,
        ),
        item(
            2,
            "inactive-groups",
            "medium",
            "reminder",
            "Old Wiki",
            Some("megan@contoso.com"),
        ),
        item(
            3,
            "high-external-members",
            "low",
            "reopened",
            "Vendors",
            Some("adele@contoso.com"),
        ),
    ];
    let exemptions = vec![
        json!({"rule": "inactive-groups", "group": "Board Archive", "reason": "Legal hold", "expires": "2026-12-01"}),
    ];
    serde_json::from_value(digest_value(items, exemptions, "Contoso", "graph")).unwrap()
}

/// The rules of the large digests, with how many findings each has.
const LARGE_RULES: &[(&str, &str, usize)] = &[
    ("ownerless-groups", "critical", 400),
    ("high-external-members", "high", 1100),
    ("inactive-groups", "medium", 1444),
    ("deleted-with-storage", "low", 56),
];

/// 3,000 findings over four rules and 150 exemptions expiring soon;
/// `name` gives the n-th group's name.
fn large(name: impl Fn(usize) -> String) -> Digest {
    let mut items = Vec::new();
    let mut n = 0;
    for (rule, severity, count) in LARGE_RULES {
        for _ in 0..*count {
            let owner =
                (n % 2 == 0).then(|| format!("[owner {n}](https://evil.example)@contoso.com"));
            items.push(item(n, rule, severity, "new", &name(n), owner.as_deref()));
            n += 1;
        }
    }
    let exemptions = (0..150)
        .map(|k| json!({"rule": "inactive-groups", "group": name(k), "expires": "2026-12-01",
                        "reason": format!("**[see](http://www.evil.example)** <!channel> & {}", name(k + 1))}))
        .collect();
    let mut digest: Digest = serde_json::from_value(digest_value(
        items,
        exemptions,
        "Smith & Sons <!here>",
        "R&D <ops>.csv",
    ))
    .unwrap();
    digest.sort();
    digest
}

fn hostile() -> Digest {
    let items = (0..40)
        .map(|n| {
            item(
                n,
                "inactive-groups",
                "medium",
                "new",
                &hostile_name(n),
                Some(&hostile_name(n + 3)),
            )
        })
        .collect();
    let exemptions = (0..8)
        .map(|n| json!({"rule": "*", "group": hostile_name(n), "reason": hostile_name(n + 1), "expires": "2026-12-01"}))
        .collect();
    let mut digest: Digest = serde_json::from_value(digest_value(
        items,
        exemptions,
        "Smith & Sons <!here>",
        "R&D <ops>.csv",
    ))
    .unwrap();
    digest.sort();
    digest
}

/// The Teams and Slack bodies for `digest`, by channel name.
fn chat_bodies(digest: &Digest) -> BTreeMap<String, String> {
    let config = "[[notify]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"https://hooks.example.com/s\"\n\
                  [[notify]]\nname = \"teams\"\ntype = \"webhook\"\nformat = \"teams\"\nurl = \"https://hooks.example.com/t\"\n";
    let loaded = LoadedConfig {
        config: parse(config).unwrap(),
        path: None,
    };
    let channels = notify::validate(&loaded).unwrap();
    notify::plan(&channels, digest)
        .iter()
        .map(|planned| {
            let channel = channels
                .iter()
                .find(|c| c.name() == planned.channel)
                .unwrap();
            let Rendered::Webhook(webhook) = notify::render(channel, planned).unwrap() else {
                panic!("a webhook body")
            };
            (planned.channel.clone(), webhook.body)
        })
        .collect()
}

/// Checks both bodies of `digest` against the receivers' rules and that
/// every rule is named with its true total.
fn check_digest(what: &str, digest: &Digest) {
    let bodies = chat_bodies(digest);
    assert_eq!(bodies.len(), 2, "{what}");
    let mut totals: BTreeMap<(String, String), usize> = BTreeMap::new();
    for item in serde_json::to_value(digest).unwrap()["items"]
        .as_array()
        .unwrap()
    {
        let field = |name: &str| item[name].as_str().unwrap().to_owned();
        *totals
            .entry((field("rule"), field("severity")))
            .or_default() += 1;
    }
    for (channel, body) in &bodies {
        let problems = match channel.as_str() {
            "teams" => teams_violations(body),
            _ => slack_violations(body),
        };
        assert!(problems.is_empty(), "{what}, {channel}: {problems:#?}");
        if channel == "teams" {
            let links = teams_links(body);
            assert!(
                links.is_empty(),
                "{what}: links in a Teams card: {links:#?}"
            );
        }
        let text = readable(body);
        for ((rule, severity), total) in &totals {
            assert!(
                text.contains(&format!("{rule} ({severity}): {total}")),
                "{what}, {channel}: no heading `{rule} ({severity}): {total}` in\n{text}"
            );
        }
        let expiring = digest.expiring_exemptions.len();
        if expiring > 0 {
            assert!(
                text.contains(&format!("Exemptions expiring soon: {expiring}")),
                "{what}, {channel}"
            );
        }
    }
}

// --------------------------------------------------------------- the tests

#[test]
fn the_checkers_catch_what_they_check() {
    let card = json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.5", "msteams": {"width": "Full"},
                    "body": [{"type": "TextBlock", "text": "x", "size": "Huge"}]}}]});
    let problems = teams_violations(&card.to_string());
    assert!(
        problems.iter().any(|p| p.contains("schema")),
        "{problems:?}"
    );
    let slack = json!({"text": "R&D <ops>", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}},
        {"type": "context", "elements": vec![json!({"type": "mrkdwn", "text": "a"}); 11]}]});
    let problems = slack_violations(&slack.to_string());
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn small_digests_fit_both_services() {
    check_digest("small", &small());
    let mut empty = small();
    empty.items.clear();
    empty.counts.new = 0;
    check_digest("no findings", &empty);
}

#[test]
fn large_digests_fit_both_services() {
    check_digest(
        "large",
        &large(|n| format!("Group number {n} with a fairly long display name")),
    );
}

#[test]
fn hostile_digests_fit_both_services_and_stay_text() {
    check_digest("hostile", &hostile());
    check_digest("large and hostile", &large(hostile_name));
}

// ------------------------------------------------- end to end, one scan

/// A report row of `n`: a third ownerless, a third inactive, a third with
/// many guests, a few deleted with storage; every name hostile.
fn scan_row(n: usize, id: &str) -> String {
    let name = hostile_name(n).replace('\n', " ");
    let group = Group {
        name: &name,
        id,
        ..Default::default()
    };
    match n % 3 {
        0 => Group { owner: "", ..group },
        1 => Group {
            last_activity: "2026-01-02",
            ..group
        },
        _ => Group {
            external: "25",
            deleted: n % 50 == 2,
            ..group
        },
    }
    .csv()
}

#[tokio::test]
async fn one_scan_of_3000_hostile_groups_sends_a_valid_teams_card_and_a_slack_message_within_limits()
 {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let dir = TempDir::new().unwrap();
    let ids: Vec<String> = (0..3000)
        .map(|n| format!("{n:08x}-0000-4000-8000-000000000000"))
        .collect();
    let rows: Vec<String> = (0..3000).map(|n| scan_row(n, &ids[n])).collect();
    write(dir.path(), "r.csv", &report(&rows));
    let expires = jiff::Zoned::now()
        .date()
        .checked_add(jiff::Span::new().days(5))
        .unwrap();
    let mut config = format!(
        "[rules]\ndir = \"{}\"\n\n[state]\npath = \"gw.db\"\nmax_new_findings = 5000\n\n\
         [[notify]]\nname = \"teams\"\ntype = \"webhook\"\nformat = \"teams\"\nurl = \"{uri}/teams\"\nretries = 0\n\n\
         [[notify]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"{uri}/slack\"\nretries = 0\n\n",
        bundled_rules().display(),
        uri = receiver.uri()
    );
    // 150 exemptions of ownerless groups, ending within the two weeks
    // that count as "expiring soon".
    for n in (0..450).step_by(3) {
        config.push_str(&format!(
            "[[exemptions]]\nrule = \"ownerless-groups\"\ngroup_id = \"{}\"\nexpires = \"{expires}\"\n\
             reason = {}\n\n",
            ids[n],
            toml_string(&format!("**[see](http://www.evil.example)** <!channel> & {}", hostile_name(n + 1)))
        ));
    }
    // Above `max_new_findings` (500 by default) the safety cap replaces
    // the list by a one-line summary; raised here so the renderers' own
    // shortening is what keeps the messages within the limits.
    write(dir.path(), "groupwarden.toml", &config);
    let mut command = gw(dir.path());
    command.args(["scan", "--input", "r.csv", "--format", "jsonl"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(1),
        "{}",
        stderr(&output)
    );
    // The true totals: the findings the scan reported, less the exempted.
    let mut totals: BTreeMap<(String, String), usize> = BTreeMap::new();
    for finding in findings(&output) {
        if finding["status"] == "exempted" {
            continue;
        }
        let rule = finding["rule"].as_str().unwrap().to_owned();
        let severity = finding["severity"].as_str().unwrap().to_owned();
        *totals.entry((rule, severity)).or_default() += 1;
    }
    assert!(totals.len() >= 3, "{totals:?}");
    let requests = receiver.received_requests().await.unwrap();
    let body_of = |path: &str| {
        let request = requests
            .iter()
            .find(|r| r.url.path() == path)
            .unwrap_or_else(|| panic!("nothing posted to {path}: {}", stderr(&output)));
        String::from_utf8(request.body.clone()).unwrap()
    };
    let teams = body_of("/teams");
    let slack = body_of("/slack");
    let blocks = serde_json::from_str::<Value>(&slack).unwrap()["blocks"]
        .as_array()
        .map_or(0, Vec::len);
    eprintln!(
        "Teams card {} bytes; Slack message {} bytes in {blocks} blocks",
        teams.len(),
        slack.len()
    );
    assert!(teams.len() <= TEAMS_MAX_BYTES, "{} bytes", teams.len());
    let problems = teams_violations(&teams);
    assert!(problems.is_empty(), "{problems:#?}");
    let links = teams_links(&teams);
    assert!(links.is_empty(), "group names became links: {links:#?}");
    let problems = slack_violations(&slack);
    assert!(problems.is_empty(), "{problems:#?}");
    for body in [&teams, &slack] {
        let text = readable(body);
        for ((rule, severity), total) in &totals {
            assert!(
                text.contains(&format!("{rule} ({severity}): {total}")),
                "no heading `{rule} ({severity}): {total}` in\n{text}"
            );
        }
        assert!(text.contains("Exemptions expiring soon: 150"), "{text}");
    }
    let fallback = serde_json::from_str::<Value>(&slack).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fallback.starts_with("groupwarden: "), "{fallback}");
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
