//! Many tenants from one installation (`[[tenants]]`): the real binary
//! against one loopback server standing in for Microsoft Entra and Graph
//! for several tenants (a token endpoint and a report per tenant id), and
//! a webhook receiver with a path per channel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tempfile::TempDir;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::util::gw_std;

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "multi-tenant-app-secret";
const REPORT_PATH_D30: &str = "/v1.0/reports/getOffice365GroupsActivityDetail(period='D30')";
const HEADER: &str = "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period\r\n";

/// A group without an owner: the bundled `ownerless-groups` finds it.
fn ownerless(date: &str, name: &str, id: &str) -> String {
    format!("{date},{name},False,,{date},Public,3,0,,,,,,1,1,1,1,{id},30\r\n")
}

/// A group with an owner and recent activity: no finding.
fn healthy(date: &str, name: &str, id: &str) -> String {
    format!(
        "{date},{name},False,owner@example.com,{date},Private,10,0,,,,,,100,2000,3,4000,{id},30\r\n"
    )
}

const A_ORPHANS: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const A_SALES: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const B_ORPHANS: &str = "bbbbbbbb-0000-0000-0000-000000000001";

/// Graph for several tenants, a webhook receiver, a config folder.
struct Msp {
    graph: MockServer,
    hooks: MockServer,
    dir: TempDir,
}

impl Msp {
    async fn start() -> Msp {
        let msp = Msp {
            graph: MockServer::start().await,
            hooks: MockServer::start().await,
            dir: tempfile::tempdir().unwrap(),
        };
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&msp.hooks)
            .await;
        msp
    }

    /// The config: a multi-tenant app's credentials in `[source]`, one
    /// owner channel per customer and one shared MSP channel, and the
    /// `[[tenants]]` given.
    fn write_config(&self, tenants: &str) -> PathBuf {
        let uri = self.graph.uri();
        let hooks = self.hooks.uri();
        let text = format!(
            r#"[source]
type = "graph"
client_id = "{CLIENT_ID}"
client_secret_env = "GW_TEST_SECRET"
authority_url = "{uri}"
graph_url = "{uri}"
max_attempts = 1

[[notify]]
name = "a-owners"
type = "webhook"
url = "{hooks}/a"
retries = 0

[[notify]]
name = "b-owners"
type = "webhook"
url = "{hooks}/b"
retries = 0

[[notify]]
name = "msp-admins"
type = "webhook"
url = "{hooks}/msp"
retries = 0

{tenants}"#
        );
        let config = self.dir.path().join("groupwarden.toml");
        std::fs::write(&config, text).unwrap();
        config
    }

    /// Tenant `id` signs in (its own token) and gets `rows` as its report.
    async fn serve(&self, id: &str, rows: &[String]) {
        let token = format!("token-of-{id}");
        Mock::given(method("POST"))
            .and(path(format!("/{id}/oauth2/v2.0/token")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token_type": "Bearer",
                "expires_in": 3599,
                "access_token": token,
            })))
            .mount(&self.graph)
            .await;
        let csv = format!("{HEADER}{}", rows.concat());
        Mock::given(method("GET"))
            .and(path(REPORT_PATH_D30))
            .and(header("authorization", format!("Bearer {token}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(csv.into_bytes(), "application/octet-stream"),
            )
            .mount(&self.graph)
            .await;
    }

    fn run(&self, args: &[&str]) -> Output {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut command = gw_std(self.dir.path());
        command
            .args(args)
            .args(["--rules", rules.to_str().unwrap()])
            .env("GW_TEST_SECRET", SECRET)
            .env(
                "GROUPWARDEN_CONFIG",
                self.dir.path().join("groupwarden.toml"),
            );
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            command.env_remove(name);
        }
        command.output().unwrap()
    }

    fn read(&self, args: &[&str]) -> Output {
        let mut command = gw_std(self.dir.path());
        command.args(args).env(
            "GROUPWARDEN_CONFIG",
            self.dir.path().join("groupwarden.toml"),
        );
        command.output().unwrap()
    }

    /// The bodies the receiver got on `path`, in order.
    async fn hook_bodies(&self, hook: &str) -> Vec<Value> {
        self.hooks
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == hook)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    fn findings_in(&self, file: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join(file)).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

const TWO_TENANTS: &str = r#"
[[tenants]]
name = "customer-a"
tenant_id = "a.onmicrosoft.com"
notify = ["a-owners", "msp-admins"]

[[tenants]]
name = "customer-b"
tenant_id = "b.onmicrosoft.com"
notify = ["b-owners", "msp-admins"]
"#;

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[tokio::test]
async fn all_tenants_are_scanned_apart_each_into_its_own_state_and_channels() {
    let msp = Msp::start().await;
    msp.write_config(TWO_TENANTS);
    msp.serve(
        "a.onmicrosoft.com",
        &[
            ownerless("2026-11-25", "A Orphans", A_ORPHANS),
            healthy("2026-11-25", "A Sales", A_SALES),
        ],
    )
    .await;
    msp.serve(
        "b.onmicrosoft.com",
        &[ownerless("2026-11-25", "B Orphans", B_ORPHANS)],
    )
    .await;

    let output = msp.run(&["scan", "--all-tenants", "--output", "out/"]);

    assert_exit(&output, 0);
    let a = msp.findings_in("out/customer-a.jsonl");
    let b = msp.findings_in("out/customer-b.jsonl");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["group_name"], "A Orphans");
    assert_eq!(a[0]["tenant"], "customer-a");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["group_name"], "B Orphans");
    assert_eq!(b[0]["tenant"], "customer-b");
    // Each tenant's own database beside where the single one would be.
    assert!(msp.dir.path().join("groupwarden-customer-a.db").is_file());
    assert!(msp.dir.path().join("groupwarden-customer-b.db").is_file());
    assert!(!msp.dir.path().join("groupwarden.db").exists());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("tenant customer-a:"), "{stderr}");
    assert!(stderr.contains("tenant customer-b:"), "{stderr}");

    // Each customer's digest to its own channel, both to the MSP's.
    let to_a = msp.hook_bodies("/a").await;
    let to_b = msp.hook_bodies("/b").await;
    let to_msp = msp.hook_bodies("/msp").await;
    assert_eq!((to_a.len(), to_b.len(), to_msp.len()), (1, 1, 2));
    assert!(to_a[0].to_string().contains("A Orphans"), "{}", to_a[0]);
    assert!(!to_a[0].to_string().contains("B Orphans"), "{}", to_a[0]);
    assert!(to_b[0].to_string().contains("B Orphans"), "{}", to_b[0]);
    assert!(to_a[0].to_string().contains("customer-a"), "{}", to_a[0]);
    let shared: String = to_msp.iter().map(Value::to_string).collect();
    assert!(shared.contains("A Orphans") && shared.contains("B Orphans"));

    // A's orphan gets an owner: resolved in A only; B's stays open.
    msp.graph.reset().await;
    msp.serve(
        "a.onmicrosoft.com",
        &[
            healthy("2026-11-26", "A Orphans", A_ORPHANS),
            healthy("2026-11-26", "A Sales", A_SALES),
        ],
    )
    .await;
    msp.serve(
        "b.onmicrosoft.com",
        &[ownerless("2026-11-26", "B Orphans", B_ORPHANS)],
    )
    .await;
    let output = msp.run(&["scan", "--all-tenants", "--output", "out/"]);
    assert_exit(&output, 0);

    let listing = |tenant: &str| {
        let output = msp.read(&[
            "findings",
            "--tenant",
            tenant,
            "--status",
            "open,new,resolved",
            "--format",
            "jsonl",
        ]);
        assert_exit(&output, 0);
        text(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|f| format!("{} {}", f["group_name"], f["status"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(listing("customer-a"), ["\"A Orphans\" \"resolved\""]);
    assert_eq!(listing("customer-b"), ["\"B Orphans\" \"open\""]);

    // The outbox is per tenant too: nothing is left waiting in A's.
    let output = msp.read(&["notify", "--retry", "--tenant", "customer-a"]);
    assert_exit(&output, 0);
    let output = msp.read(&["trend", "--tenant", "customer-b", "--format", "jsonl"]);
    assert_exit(&output, 0);
    assert!(text(&output.stdout).lines().count() > 0);

    // Without a tenant, the reading commands say what to pass.
    let output = msp.read(&["findings"]);
    assert_exit(&output, 2);
    assert!(text(&output.stderr).contains("--tenant NAME"));
}

#[tokio::test]
async fn a_failing_tenant_exits_2_naming_it_and_the_others_are_kept() {
    let msp = Msp::start().await;
    msp.write_config(&format!(
        "{TWO_TENANTS}\n[[tenants]]\nname = \"customer-c\"\ntenant_id = \"c.onmicrosoft.com\"\nnotify = [\"msp-admins\"]\n"
    ));
    msp.serve(
        "a.onmicrosoft.com",
        &[ownerless("2026-11-25", "A Orphans", A_ORPHANS)],
    )
    .await;
    msp.serve(
        "b.onmicrosoft.com",
        &[ownerless("2026-11-25", "B Orphans", B_ORPHANS)],
    )
    .await;
    // customer-c never consented to the app.
    Mock::given(method("POST"))
        .and(path("/c.onmicrosoft.com/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        })))
        .mount(&msp.graph)
        .await;

    let output = msp.run(&["scan", "--all-tenants", "--output", "out/"]);

    assert_exit(&output, 2);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("1 of 3 tenants failed: customer-c"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert_eq!(msp.findings_in("out/customer-a.jsonl").len(), 1);
    assert_eq!(msp.findings_in("out/customer-b.jsonl").len(), 1);
    assert!(!msp.dir.path().join("out/customer-c.jsonl").exists());
    assert_eq!(msp.hook_bodies("/msp").await.len(), 2);

    // Without a flag, scan says what to pass.
    let output = msp.run(&["scan"]);
    assert_exit(&output, 2);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("pass --tenant NAME (scan also takes --all-tenants"),
        "{stderr}"
    );
}

#[test]
fn shards_partition_the_tenants_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut tenants = String::from("[source]\ntype = \"file\"\n");
    let mut names = BTreeSet::new();
    for i in 0..12 {
        let name = format!("t{i}");
        let report = format!("{HEADER}{}", ownerless("2026-11-25", &name, A_ORPHANS));
        std::fs::write(dir.path().join(format!("{name}.csv")), report).unwrap();
        tenants.push_str(&format!(
            "\n[[tenants]]\nname = \"{name}\"\npath = \"{name}.csv\"\n"
        ));
        names.insert(format!("{name}.jsonl"));
    }
    std::fs::write(dir.path().join("groupwarden.toml"), tenants).unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let shard = |part: &str| -> BTreeSet<String> {
        let out = format!("shard{}/", part.replace('/', "of"));
        let output = gw_std(dir.path())
            .args(["scan", "--all-tenants", "--no-state", "--shard", part])
            .args(["--output", &out, "--rules", rules.to_str().unwrap()])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        std::fs::read_dir(dir.path().join(&out))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let first = shard("1/2");
    let second = shard("2/2");
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    assert_eq!(
        first.union(&second).cloned().collect::<BTreeSet<_>>(),
        names
    );
    assert!(!first.is_empty() && !second.is_empty());
    // The stateless scan's findings, rendered by the workers, carry the tenant too.
    let t0 = ["shard1of2", "shard2of2"]
        .iter()
        .map(|d| dir.path().join(d).join("t0.jsonl"))
        .find(|p| p.exists())
        .unwrap();
    let line: Value = serde_json::from_str(std::fs::read_to_string(t0).unwrap().trim()).unwrap();
    assert_eq!(line["tenant"], "t0");
    assert_eq!(line["rule"], "ownerless-groups");
    // The same split every time.
    assert_eq!(shard("1/2"), first);
}

#[test]
fn the_daemon_scans_every_tenant_and_labels_its_metrics_by_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let a = format!(
        "{HEADER}{}{}",
        ownerless("2026-11-25", "A Orphans", A_ORPHANS),
        healthy("2026-11-25", "A Sales", A_SALES)
    );
    let b = format!("{HEADER}{}", healthy("2026-11-25", "B Sales", B_ORPHANS));
    std::fs::write(dir.path().join("a.csv"), a).unwrap();
    std::fs::write(dir.path().join("b.csv"), b).unwrap();
    let config = dir.path().join("groupwarden.toml");
    std::fs::write(
        &config,
        format!(
            "[rules]\ndir = \"{}\"\n\n[source]\ntype = \"file\"\n\n\
             [schedule]\ncron = \"0 0 1 1 *\"\nrun_on_start = true\noutput = \"findings.json\"\n\n\
             [health]\nlisten = \"127.0.0.1:0\"\n\n\
             [[tenants]]\nname = \"a\"\npath = \"a.csv\"\n\n[[tenants]]\nname = \"b\"\npath = \"b.csv\"\n",
            rules.display()
        ),
    )
    .unwrap();

    let mut daemon = crate::daemon::Daemon::start(dir.path(), &config);
    let event = daemon.next_scan_success();
    assert_eq!(event["fields"]["rows"], 3, "{event}");

    let (status, page) = daemon.get("/metrics");
    assert_eq!(status, 200);
    let scrape = crate::daemon::scrape(&page);
    let sample = |name: &str, labels: &[(&str, &str)]| crate::daemon::sample(&scrape, name, labels);
    assert_eq!(
        sample("groupwarden_last_scan_rows", &[("tenant", "a")]),
        Some(2.0)
    );
    assert_eq!(
        sample("groupwarden_last_scan_rows", &[("tenant", "b")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            "groupwarden_findings",
            &[("tenant", "a"), ("rule", "ownerless-groups")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            "groupwarden_findings",
            &[("tenant", "b"), ("rule", "ownerless-groups")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            "groupwarden_findings_by_status",
            &[
                ("tenant", "a"),
                ("rule", "ownerless-groups"),
                ("status", "new")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample("groupwarden_tenant_last_scan_success", &[("tenant", "b")]),
        Some(1.0)
    );
    // Each tenant's own document and database.
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("findings-a.json")).unwrap())
            .unwrap();
    assert_eq!(document["findings"][0]["tenant"], "a");
    assert!(dir.path().join("findings-b.json").is_file());
    assert!(dir.path().join("groupwarden-a.db").is_file());
    assert!(dir.path().join("groupwarden-b.db").is_file());
}

#[test]
fn pages_per_tenant_get_an_overview_and_csv_names_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut config = String::from("[source]\ntype = \"file\"\n");
    for (name, rows) in [("north", 2), ("south", 1)] {
        let report: String = (0..rows)
            .map(|i| {
                ownerless(
                    "2026-11-25",
                    &format!("{name} {i}"),
                    &format!("{i}000000-0000-0000-0000-00000000000{i}"),
                )
            })
            .collect();
        std::fs::write(
            dir.path().join(format!("{name}.csv")),
            format!("{HEADER}{report}"),
        )
        .unwrap();
        config.push_str(&format!(
            "\n[[tenants]]\nname = \"{name}\"\npath = \"{name}.csv\"\n"
        ));
    }
    std::fs::write(dir.path().join("groupwarden.toml"), config).unwrap();
    let scan = |extra: &[&str]| {
        gw_std(dir.path())
            .args(["scan", "--no-state", "--rules", rules.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };

    let output = scan(&["--all-tenants", "--format", "html", "--output", "pages/"]);
    assert_exit(&output, 0);
    let index = std::fs::read_to_string(dir.path().join("pages/index.html")).unwrap();
    assert!(
        index.contains("<a href=\"north.html\">north</a>"),
        "{index}"
    );
    assert!(index.contains("<tr data-tenant=\"south\">"), "{index}");
    assert!(
        index.contains("<td data-rule=\"ownerless-groups\">2</td>"),
        "{index}"
    );
    let north = std::fs::read_to_string(dir.path().join("pages/north.html")).unwrap();
    assert!(north.contains("<span id=\"tenant\">north</span>"));
    // The full list beside each page names its tenant, as the CSV output does.
    let list = std::fs::read_to_string(dir.path().join("pages/north.findings.csv")).unwrap();
    let rows: Vec<&str> = list.lines().collect();
    assert!(rows[0].starts_with("tenant,rule,"), "{list}");
    assert_eq!(rows.len(), 3, "{list}");
    assert!(rows[1..].iter().all(|r| r.starts_with("north,")), "{list}");

    // Standard output: each tenant's findings whole, one after the other.
    let output = scan(&["--format", "csv", "--tenant", "north,south"]);
    assert_exit(&output, 0);
    let csv = text(&output.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("tenant,rule,"), "{csv}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("north,")).count(),
        2,
        "{csv}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("south,")).count(),
        1,
        "{csv}"
    );
}

/// The first ```toml block of `text`.
fn first_toml_block(text: &str) -> String {
    let start = text.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + text[start..].find("```").unwrap();
    text[start..end].to_owned()
}

#[test]
fn the_documented_configurations_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/tenants.md")).unwrap();
    let manifest =
        std::fs::read_to_string(root.join("examples/deploy/kubernetes/sharded/configmap.yaml"))
            .unwrap();
    // The ConfigMap's groupwarden.toml: the block indented under its key.
    let from_manifest: String = manifest
        .split_once("groupwarden.toml: |\n")
        .unwrap()
        .1
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    for (name, config) in [("doc", first_toml_block(&doc)), ("manifest", from_manifest)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), "s3cret").unwrap();
        let config = config
            .replace(
                "/usr/share/groupwarden/rules",
                root.join("rules").to_str().unwrap(),
            )
            .replace(
                "/var/lib/groupwarden/",
                &format!("{}/", dir.path().display()),
            )
            .replace(
                "/var/run/secrets/groupwarden/client-secret",
                dir.path().join("client-secret").to_str().unwrap(),
            );
        let path = dir.path().join("groupwarden.toml");
        std::fs::write(&path, &config).unwrap();
        let output = gw_std(dir.path())
            .args(["validate", "--config"])
            .arg(&path)
            .args(["--rules", root.join("rules").to_str().unwrap()])
            .env("GROUPWARDEN_CLIENT_SECRET", "s3cret")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}:\n{config}\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        assert!(
            text(&output.stdout).contains("2 tenants"),
            "{name}: {}",
            text(&output.stdout)
        );
    }
}

#[test]
fn validate_checks_each_tenants_rule_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.path().join("groupwarden.toml"),
        "[source]\ntype = \"file\"\n\n[[tenants]]\nname = \"good\"\npath = \"g.csv\"\n\n\
         [[tenants]]\nname = \"odd\"\npath = \"o.csv\"\nrules.params.inactive-groups.dayz = 3\n",
    )
    .unwrap();
    let output = gw_std(dir.path())
        .args(["validate", "--rules", root.join("rules").to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(said.contains("tenant odd:"), "{said}");
    assert!(said.contains("dayz"), "{said}");
    assert!(!said.contains("tenant good:"), "{said}");
}
