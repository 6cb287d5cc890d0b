//! The directory join (`[directory]`), against a Graph stand-in on
//! loopback that pages `/groups` with expanded owners, throttles once,
//! and serves the owners of a group with more than Graph's 20 expanded
//! ones on their own; the report is read from a file (`--input`) with
//! `[source]`'s credentials used for the directory alone.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::{
    body_string_contains, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::notify::SmtpSink;
use crate::util::gw_std;

const SECRET: &str = "dir-s3cr3t~Value";
const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.directory-token.sig";
const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";

const YOUNG: &str = "00000000-0000-4000-8000-000000000001";
const OLD: &str = "00000000-0000-4000-8000-000000000002";
const TEAM: &str = "00000000-0000-4000-8000-000000000003";
const SOLO: &str = "00000000-0000-4000-8000-000000000004";
const NOBODY: &str = "00000000-0000-4000-8000-000000000005";
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000006";

/// A custom rule reading the directory's fields: one finding per group
/// the directory knows, saying what it knows.
const FACTS_RULE: &str = r#"
const SEVERITY = "low";
fn check(row) {
    if row.owner_count == () {
        return ();
    }
    let first = if row.owners.len() > 0 { row.owners[0] } else { "-" };
    let last = if row.owners.len() > 0 { row.owners[row.owners.len() - 1] } else { "-" };
    return `owners=${row.owner_count} first=${first} last=${last} team=${row.is_team} created=${row.created_date} age=${row.days_since_created} label=${row.sensitivity_label ?? "-"}`;
}
"#;

/// The report: every group inactive for the whole period, refreshed on
/// 2026-11-25; the report names one owner per group (or none).
fn report(rows: &[(&str, &str, &str)]) -> String {
    let mut text = String::from(crate::util::HEADER);
    text.push('\n');
    for (name, owner, id) in rows {
        text.push_str(&format!(
            "2026-11-25,{name},False,{owner},,Private,5,0,,,,,,1,1,1,1,{id},30\n"
        ));
    }
    text
}

fn full_report() -> String {
    report(&[
        ("Young", "ann@contoso.com", YOUNG),
        ("Old", "ann@contoso.com", OLD),
        ("Team", "owner1@contoso.com", TEAM),
        ("Solo", "solo@contoso.com", SOLO),
        ("Nobody", "left@contoso.com", NOBODY),
        ("Unknown", "who@contoso.com", UNKNOWN),
    ])
}

fn owner(n: usize) -> Value {
    json!({"@odata.type": "#microsoft.graph.user", "id": format!("u{n}"), "mail": format!("owner{n}@contoso.com"), "userPrincipalName": format!("owner{n}@contoso.onmicrosoft.com")})
}

fn group(id: &str, name: &str, created: &str, team: bool, owners: Vec<Value>) -> Value {
    json!({
        "id": id,
        "displayName": name,
        "mail": format!("{}@contoso.com", name.to_lowercase()),
        "createdDateTime": created,
        "visibility": "Private",
        "resourceProvisioningOptions": if team { json!(["Team"]) } else { json!([]) },
        "expirationDateTime": null,
        "assignedLabels": if team { json!([{"labelId": "l1", "displayName": "Confidential"}]) } else { json!([]) },
        "owners": owners,
    })
}

/// Graph and Entra on one loopback server, and a folder with the config,
/// rules and report.
struct Tenant {
    graph: MockServer,
    dir: TempDir,
}

impl Tenant {
    async fn start() -> Tenant {
        let graph = MockServer::start().await;
        let tenant = Tenant {
            graph,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(tenant.dir.path().join("rules")).unwrap();
        for (name, text) in [
            ("inactive-groups.rhai", "rules/inactive-groups.rhai"),
            ("ownerless-groups.rhai", "rules/ownerless-groups.rhai"),
            ("single-owner-groups.rhai", "rules/single-owner-groups.rhai"),
        ] {
            let source =
                std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(text)).unwrap();
            std::fs::write(tenant.dir.path().join("rules").join(name), source).unwrap();
        }
        std::fs::write(
            tenant.dir.path().join("rules/directory-facts.rhai"),
            FACTS_RULE,
        )
        .unwrap();
        std::fs::write(tenant.dir.path().join("report.csv"), full_report()).unwrap();
        tenant.write_config("");
        tenant.mount_graph().await;
        tenant
    }

    fn write_config(&self, extra: &str) {
        let uri = self.graph.uri();
        let text = format!(
            "[source]\ntype = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret_env = \"GW_TEST_SECRET\"\n\
             authority_url = \"{uri}\"\ngraph_url = \"{uri}\"\nmax_attempts = 3\nretry_delay = \"10ms\"\n\
             retry_max_delay = \"20ms\"\n\n[directory]\nenabled = true\nmax_age = \"1h\"\n\n\
             [state]\npath = \"state.db\"\n\n[rules]\ndir = \"rules\"\n{extra}"
        );
        std::fs::write(self.dir.path().join("groupwarden.toml"), text).unwrap();
    }

    /// The token endpoint; `/groups` in two pages, the first throttled
    /// once; the Team's 25 owners in two pages of their own.
    async fn mount_graph(&self) {
        let uri = self.graph.uri();
        Mock::given(method("POST"))
            .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
            .and(body_string_contains("grant_type=client_credentials"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "token_type": "Bearer", "expires_in": 3599, "access_token": ACCESS_TOKEN,
            })))
            .mount(&self.graph)
            .await;
        let groups = || {
            Mock::given(method("GET"))
                .and(path("/v1.0/groups"))
                .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
                .and(query_param("$filter", "groupTypes/any(c:c eq 'Unified')"))
                .and(query_param(
                    "$expand",
                    "owners($select=id,mail,userPrincipalName)",
                ))
        };
        // Throttled once: the retry policy waits and asks again.
        groups()
            .and(query_param_is_missing("$skiptoken"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "0")
                    .set_body_json(
                        json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
                    ),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&self.graph)
            .await;
        groups()
            .and(query_param_is_missing("$skiptoken"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "value": [
                    group(YOUNG, "Young", "2026-11-20T09:00:00Z", false, vec![owner(1), owner(2)]),
                    group(OLD, "Old", "2020-01-01T00:00:00Z", false, vec![
                        json!({"id": "ua", "mail": "Ann@Contoso.com", "userPrincipalName": "ann@contoso.onmicrosoft.com"}),
                        json!({"id": "ub", "mail": null, "userPrincipalName": "co-owner@contoso.com"}),
                    ]),
                    // Graph expands at most 20: the rest must be asked for.
                    group(TEAM, "Team", "2025-06-01T12:00:00Z", true, (1..=20).map(owner).collect()),
                ],
                "@odata.nextLink": format!("{uri}/v1.0/groups?$skiptoken=page2"),
            })))
            .with_priority(2)
            .mount(&self.graph)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1.0/groups"))
            .and(query_param("$skiptoken", "page2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "value": [
                    group(SOLO, "Solo", "2024-01-01T00:00:00Z", false, vec![owner(7)]),
                    group(NOBODY, "Nobody", "2023-03-03T00:00:00Z", false, vec![]),
                ],
            })))
            .mount(&self.graph)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/v1.0/groups/{TEAM}/owners")))
            .and(query_param_is_missing("$skiptoken"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "value": (1..=15).map(owner).collect::<Vec<_>>(),
                "@odata.nextLink": format!("{uri}/v1.0/groups/{TEAM}/owners?$skiptoken=o2"),
            })))
            .mount(&self.graph)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/v1.0/groups/{TEAM}/owners")))
            .and(query_param("$skiptoken", "o2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "value": (16..=25).map(owner).collect::<Vec<_>>(),
            })))
            .mount(&self.graph)
            .await;
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = gw_std(self.dir.path());
        command
            .args(args)
            .env("GW_TEST_SECRET", SECRET)
            .env("GROUPWARDEN_CONFIG", self.path("groupwarden.toml"));
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(name);
        }
        command.output().unwrap()
    }

    fn scan(&self, extra: &[&str]) -> Output {
        let mut args = vec!["scan", "--input", "report.csv", "--format", "jsonl"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Requests Graph received for `/groups` pages (throttled ones included).
    async fn group_page_requests(&self) -> usize {
        self.graph
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/v1.0/groups")
            .count()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_exit(output: &Output, codes: &[i32]) {
    assert!(
        codes.contains(&output.status.code().unwrap_or(-1)),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Findings of `rule`, by group name, with their messages.
fn by_group(output: &Output, rule: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            (
                f["group_name"].as_str().unwrap().to_owned(),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn rules_read_every_owner_teams_and_creation_dates_from_the_directory() {
    let tenant = Tenant::start().await;
    let output = tenant.scan(&["--no-state"]);
    assert_exit(&output, &[0]);

    assert_eq!(
        by_group(&output, "directory-facts"),
        [
            ("Nobody".to_owned(), "owners=0 first=- last=- team=false created=2023-03-03 age=1363 label=-".to_owned()),
            ("Old".to_owned(), "owners=2 first=Ann@Contoso.com last=co-owner@contoso.com team=false created=2020-01-01 age=2520 label=-".to_owned()),
            ("Solo".to_owned(), "owners=1 first=owner7@contoso.com last=owner7@contoso.com team=false created=2024-01-01 age=1059 label=-".to_owned()),
            ("Team".to_owned(), "owners=25 first=owner1@contoso.com last=owner25@contoso.com team=true created=2025-06-01 age=542 label=Confidential".to_owned()),
            ("Young".to_owned(), "owners=2 first=owner1@contoso.com last=owner2@contoso.com team=false created=2026-11-20 age=5 label=-".to_owned()),
        ],
        "exactly the groups the directory has, with what it says (Unknown is not in it)"
    );
    // The young group has had no time to be inactive; the others have.
    let inactive: Vec<String> = by_group(&output, "inactive-groups")
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    assert_eq!(inactive, ["Nobody", "Old", "Solo", "Team", "Unknown"]);
    // Ownerless by the directory's count, even though the report names
    // an owner of Nobody.
    let ownerless: Vec<String> = by_group(&output, "ownerless-groups")
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    assert_eq!(ownerless, ["Nobody"]);
    let single: Vec<String> = by_group(&output, "single-owner-groups")
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    assert_eq!(single, ["Solo"]);

    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("HTTP 429") && stderr.contains("trying again"),
        "the 429 was retried: {stderr}"
    );
    assert!(
        !stderr.contains("report requests"),
        "the report's throttling advice is not the directory's: {stderr}"
    );
    assert!(
        !stderr.contains(SECRET) && !stderr.contains(ACCESS_TOKEN),
        "{stderr}"
    );
    // Two pages of groups after one throttled request; the Team's owners
    // in two pages of their own.
    assert_eq!(tenant.group_page_requests().await, 3);
    assert!(
        !tenant.path("state.db").exists(),
        "--no-state keeps no cache"
    );
}

#[tokio::test]
async fn the_cache_is_reused_within_max_age_and_refreshed_by_fetch_directory() {
    let tenant = Tenant::start().await;
    let first = tenant.scan(&[]);
    assert_exit(&first, &[0]);
    assert_eq!(tenant.group_page_requests().await, 3);

    let second = tenant.scan(&["--allow-older"]);
    assert_exit(&second, &[0]);
    assert_eq!(
        tenant.group_page_requests().await,
        3,
        "the cached directory was used"
    );
    assert!(
        text(&second.stderr).contains("using the cached directory"),
        "{}",
        text(&second.stderr)
    );
    // The cache answers as the fetch did.
    assert_eq!(by_group(&second, "directory-facts").len(), 5);

    // explain shows the directory's fields from the same cache.
    let explain = tenant.run(&["explain", "--input", "report.csv", "Team"]);
    assert_exit(&explain, &[0]);
    let shown = text(&explain.stdout);
    for line in ["  owner_count ", "  is_team ", "  sensitivity_label "] {
        assert!(
            shown.lines().any(|l| l.starts_with(line)),
            "{line}: {shown}"
        );
    }
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("  owner_count") && l.trim_end().ends_with(" 25")),
        "{shown}"
    );
    assert!(shown.contains("\"owner25@contoso.com\""), "{shown}");
    assert_eq!(
        tenant.group_page_requests().await,
        3,
        "explain read the cache"
    );

    let fetch = tenant.run(&["fetch", "--directory"]);
    assert_exit(&fetch, &[0]);
    assert!(
        text(&fetch.stderr)
            .contains("5 Microsoft 365 group(s), 1 of them Teams, 1 without an owner"),
        "{}",
        text(&fetch.stderr)
    );
    // The throttling answer was used up: two pages this time.
    assert_eq!(tenant.group_page_requests().await, 5);

    // A max_age of zero makes every cache old.
    tenant.write_config("");
    let config = std::fs::read_to_string(tenant.path("groupwarden.toml")).unwrap();
    std::fs::write(
        tenant.path("groupwarden.toml"),
        config.replace("max_age = \"1h\"", "max_age = \"0s\""),
    )
    .unwrap();
    let third = tenant.scan(&["--allow-older"]);
    assert_exit(&third, &[0]);
    assert_eq!(tenant.group_page_requests().await, 7);
}

#[tokio::test]
async fn owner_mail_reaches_every_owner_the_directory_has() {
    let tenant = Tenant::start().await;
    let sink = SmtpSink::start(0, None);
    tenant.write_config(&format!(
        r#"
[[notify]]
name = "owners"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "none"
from = "groupwarden <alerts@contoso.com>"
retries = 1
retry_backoff_ms = 10
to = "group-owners"
fallback_to = ["m365-admins@contoso.com"]
rules = ["ownerless-groups", "single-owner-groups", "inactive-groups"]
"#,
        sink.port
    ));
    std::fs::write(
        tenant.path("report.csv"),
        report(&[
            ("Old", "ann@contoso.com", OLD),
            ("Nobody", "left@contoso.com", NOBODY),
        ]),
    )
    .unwrap();
    let output = tenant.scan(&[]);
    assert_exit(&output, &[0]);

    let mut recipients: Vec<String> = sink
        .messages()
        .iter()
        .flat_map(|m| {
            m["rcpt_tos"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        [
            "ann@contoso.com",
            "co-owner@contoso.com",
            "m365-admins@contoso.com"
        ],
        "Old's co-owner is mailed too; Nobody has no owner in the directory (the report's stale owner is not mailed)"
    );
}

#[tokio::test]
async fn a_concealed_report_cannot_be_joined_and_says_so_once() {
    let tenant = Tenant::start().await;
    std::fs::write(
        tenant.path("report.csv"),
        report(&[
            (
                "7D3654B07E126BBD0D18174368FC243F",
                "",
                "00000000-0000-0000-0000-000000000000",
            ),
            (
                "8D3654B07E126BBD0D18174368FC243F",
                "",
                "00000000-0000-0000-0000-000000000000",
            ),
        ]),
    )
    .unwrap();
    let output = tenant.scan(&["--no-state"]);
    assert_exit(&output, &[0, 1]);
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("cannot be joined").count(), 1, "{stderr}");
    assert!(
        stderr.contains("Display concealed user, group, and site names in all reports"),
        "{stderr}"
    );
    assert!(by_group(&output, "directory-facts").is_empty());
}

#[tokio::test]
async fn a_refusal_names_the_permission_the_directory_needs() {
    let graph = MockServer::start().await;
    let tenant = Tenant {
        graph,
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(tenant.path("report.csv"), full_report()).unwrap();
    tenant.write_config("");
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": ACCESS_TOKEN,
        })))
        .mount(&tenant.graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}
        })))
        .mount(&tenant.graph)
        .await;
    std::fs::create_dir(tenant.path("rules")).unwrap();
    std::fs::write(tenant.path("rules/directory-facts.rhai"), FACTS_RULE).unwrap();
    let output = tenant.scan(&["--no-state"]);
    assert_exit(&output, &[2]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("HTTP 403")
            && stderr.contains("Group.Read.All")
            && stderr.contains("[directory]"),
        "{stderr}"
    );
    assert!(
        text(&output.stdout).is_empty(),
        "nothing is scanned without the directory asked for"
    );
}

#[tokio::test]
async fn a_directory_past_its_bounds_fails_the_scan_naming_the_key() {
    let tenant = Tenant::start().await;
    let config = std::fs::read_to_string(tenant.path("groupwarden.toml")).unwrap();
    std::fs::write(
        tenant.path("groupwarden.toml"),
        config.replace("max_age = \"1h\"", "max_age = \"1h\"\nmax_groups = 2"),
    )
    .unwrap();
    let output = tenant.scan(&["--no-state"]);
    assert_exit(&output, &[2]);
    assert!(
        text(&output.stderr).contains("more than 2 groups ([directory] max_groups)"),
        "{}",
        text(&output.stderr)
    );

    std::fs::write(
        tenant.path("groupwarden.toml"),
        config.replace("max_age = \"1h\"", "max_age = \"1h\"\nmax_page_bytes = 100"),
    )
    .unwrap();
    let output = tenant.scan(&["--no-state"]);
    assert_exit(&output, &[2]);
    assert!(
        text(&output.stderr).contains("larger than 100 bytes ([directory] max_page_bytes)"),
        "{}",
        text(&output.stderr)
    );

    std::fs::write(
        tenant.path("groupwarden.toml"),
        config.replace("max_age = \"1h\"", "max_age = \"1 fortnight\""),
    )
    .unwrap();
    let output = tenant.scan(&["--no-state"]);
    assert_exit(&output, &[2]);
    assert!(
        text(&output.stderr).contains("max_age"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test]
async fn validate_says_whether_the_directory_can_be_fetched() {
    let tenant = Tenant::start().await;
    let output = tenant.run(&["validate"]);
    assert_exit(&output, &[0]);
    assert!(
        text(&output.stdout).contains("ok    directory   on: Microsoft 365 groups from Graph"),
        "{}",
        text(&output.stdout)
    );
    std::fs::write(
        tenant.path("groupwarden.toml"),
        "[source]\ntype = \"file\"\npath = \"report.csv\"\n\n[directory]\nenabled = true\n\n[rules]\ndir = \"rules\"\n",
    )
    .unwrap();
    let output = tenant.run(&["validate"]);
    assert_exit(&output, &[1, 2]);
    assert!(
        text(&output.stdout).contains("FAIL  directory")
            && text(&output.stdout).contains("no Graph credentials"),
        "{}",
        text(&output.stdout)
    );
    let scan = tenant.scan(&["--no-state"]);
    assert_exit(&scan, &[2]);
    assert!(
        text(&scan.stderr).contains("[source] has type = \"file\""),
        "{}",
        text(&scan.stderr)
    );
    assert_eq!(
        tenant.group_page_requests().await,
        0,
        "nothing was asked of Graph"
    );
}
