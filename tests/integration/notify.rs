//! Notifications end to end: the real binary and the library against real
//! servers on loopback (an aiosmtpd SMTP server, wiremock HTTP receivers).
//!
//! The SMTP tests need Python's `aiosmtpd` (`pip install aiosmtpd`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use groupwarden::config::{LoadedConfig, parse};
use groupwarden::notify::render::Rendered;
use groupwarden::notify::{self, Channel, Courier, Digest, Planned};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::util::gw_std;

const WEBHOOK_KEY: &str = "test-signing-key";

// ---------------------------------------------------------------- helpers

/// A digest with findings of every status and severity, on groups of two
/// owners and one without an owner.
fn digest() -> Value {
    json!({
        "scan": {
            "tenant": "Contoso",
            "source": "graph",
            "report_refresh_date": "2026-11-25",
            "report_period": 180,
            "scanned_at": "2026-11-26T06:00:00Z",
            "rows": 1204
        },
        "counts": {"new": 3, "reopened": 1, "reminders": 1, "resolved": 1, "exempted": 2, "expiring_exemptions": 1},
        "items": [
            item("new", "high", "ownerless-groups", "g-phoenix", "Project Phoenix", None, "The group has no owner"),
            item("new", "medium", "inactive-groups", "g-sales", "Sales EMEA", Some("adele.vance@contoso.com"), "No activity for 212 days"),
            item("reminder", "medium", "inactive-groups", "g-wiki", "Old Wiki", Some("Megan.Bowen@contoso.com"), "No activity for 400 days"),
            item("reopened", "low", "external-members", "g-vendors", "Vendors", Some("adele.vance@contoso.com"), "3 guests in a private group"),
            item("new", "critical", "public-with-guests", "g-board", "Board <Confidential> & Co", Some("megan.bowen@contoso.com"), "Public group with 4 guests"),
            item("resolved", "medium", "inactive-groups", "g-old", "Retired Team", Some("adele.vance@contoso.com"), "No activity for 100 days")
        ],
        "expiring_exemptions": [
            {"rule": "inactive-groups", "group": "Board Archive", "reason": "Legal hold", "expires": "2026-12-01"}
        ]
    })
}

fn item(
    status: &str,
    severity: &str,
    rule: &str,
    id: &str,
    name: &str,
    owner: Option<&str>,
    message: &str,
) -> Value {
    json!({
        "status": status, "key": format!("{rule}:{id}"), "rule": rule, "severity": severity,
        "group_id": id, "group_name": name, "owner": owner, "message": message,
        "evidence": {"days_since_activity": 212, "last_activity": null},
        "first_seen": "2026-10-01"
    })
}

struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("groupwarden.toml"), config).unwrap();
        std::fs::write(dir.path().join("digest.json"), digest().to_string()).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = gw_std(self.dir.path());
        command
            .arg("notify")
            .arg("--config")
            .arg(self.path("groupwarden.toml"))
            .args(args)
            .env("GROUPWARDEN_LOG", "warn");
        command
    }

    /// The channels, as the library loads them.
    fn channels(&self) -> Vec<Channel> {
        let text = std::fs::read_to_string(self.path("groupwarden.toml")).unwrap();
        let loaded = LoadedConfig {
            config: parse(&text).unwrap(),
            path: Some(self.path("groupwarden.toml")),
        };
        notify::validate(&loaded).unwrap()
    }
}

/// Runs a command without blocking the test's async runtime (the
/// wiremock servers live on it).
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd, run by this test, writing what it receives to a folder.
pub(crate) struct SmtpSink {
    child: Child,
    pub(crate) port: u16,
    inbox: TempDir,
}

impl SmtpSink {
    pub(crate) fn start(port: u16, login: Option<(&str, &str)>) -> SmtpSink {
        SmtpSink::start_with(port, login, &[])
    }

    /// A sink answering DATA with `reply` (an SMTP reply line) for the
    /// first `times` messages, or all.
    pub(crate) fn replying(reply: &str, times: Option<u32>) -> SmtpSink {
        let times = times.map(|n| n.to_string()).unwrap_or_default();
        SmtpSink::start_with(
            0,
            None,
            &[
                ("SMTP_SINK_REPLY", Path::new(reply)),
                ("SMTP_SINK_REPLY_TIMES", Path::new(&times)),
            ],
        )
    }

    fn start_with(port: u16, login: Option<(&str, &str)>, env: &[(&str, &Path)]) -> SmtpSink {
        let inbox = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/smtp_sink.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(inbox.path()).arg(port.to_string());
        if let Some((user, password)) = login {
            command.args([user, password]);
        }
        command.envs(env.iter().copied());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the SMTP sink (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("READY ").unwrap_or_else(|| {
            panic!("the SMTP sink did not start (is aiosmtpd installed? pip install aiosmtpd): {line:?}")
        });
        SmtpSink {
            port: port.parse().unwrap(),
            child,
            inbox,
        }
    }

    /// Every message received (and refused, with its `reply`), oldest first.
    pub(crate) fn messages(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.inbox.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_channel(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[[notify]]
name = "{name}"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "groupwarden <alerts@contoso.com>"
retries = 1
retry_backoff_ms = 10
{extra}
"#
    )
}

/// The decoded body of the MIME part of `content_type` in a raw message.
fn mime_part(raw: &str, content_type: &str) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a MIME message");
    let part = message
        .parts
        .iter()
        .find(|part| {
            let (ctype, subtype) = content_type.split_once('/').unwrap();
            mail_parser::MimeHeaders::is_content_type(*part, ctype, subtype)
        })
        .unwrap_or_else(|| panic!("no {content_type} part in:\n{raw}"));
    part.text_contents().expect("a text part").to_owned()
}

pub(crate) fn header_value(raw: &str, name: &str) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    message
        .header_raw(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .trim()
        .to_owned()
}

fn subject(raw: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap()
        .subject()
        .unwrap()
        .to_owned()
}

// ------------------------------------------------------------------ email

#[test]
fn the_email_digest_reaches_the_smtp_server_as_text_and_html() {
    let sink = SmtpSink::start(0, Some(("alerts@contoso.com", "smtp-pa55word")));
    let extra = r#"to = ["m365-admins@contoso.com", "Security Team <security@contoso.com>"]
username = "alerts@contoso.com"
password_env = "TEST_SMTP_PASSWORD"
include_resolved = true"#;
    let setup = Setup::new(&email_channel("admins", sink.port, extra));

    let output = setup
        .command(&["--digest", "digest.json"])
        .env("TEST_SMTP_PASSWORD", "smtp-pa55word")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !text(&output.stderr).contains("pa55word") && !text(&output.stdout).contains("pa55word")
    );

    let messages = sink.messages();
    assert_eq!(
        messages.len(),
        1,
        "one digest per channel, not one message per finding"
    );
    let message = &messages[0];
    assert_eq!(message["mail_from"], "alerts@contoso.com");
    assert_eq!(
        message["rcpt_tos"],
        json!(["m365-admins@contoso.com", "security@contoso.com"])
    );
    assert_eq!(message["login"], "alerts@contoso.com");
    let raw = message["data"].as_str().unwrap();
    assert_eq!(
        subject(raw),
        "[groupwarden] Contoso: 3 new, 1 flagged again, 1 reminder, 1 resolved, 1 expiring exemption"
    );
    assert_eq!(header_value(raw, "Auto-Submitted"), "auto-generated");

    let plain = mime_part(raw, "text/plain");
    assert!(plain.contains("New: 3 | Flagged again: 1 | Reminders: 1 | Resolved: 1 | Exempted: 2 | Expiring exemptions: 1"), "{plain}");
    // Most severe rule first.
    let critical = plain.find("== public-with-guests (critical)").unwrap();
    let high = plain.find("== ownerless-groups (high)").unwrap();
    let low = plain.find("== external-members (low)").unwrap();
    assert!(critical < high && high < low, "{plain}");
    assert!(
        plain.contains("* [resolved] Retired Team"),
        "include_resolved lists resolved findings: {plain}"
    );

    let html = mime_part(raw, "text/html");
    assert!(
        !html.contains("<table"),
        "one column of blocks, no tables: {html}"
    );
    assert!(
        html.contains("Board &lt;Confidential&gt; &amp; Co"),
        "group names are HTML-escaped: {html}"
    );
    assert!(
        html.contains("Legal hold"),
        "expiring exemptions are listed: {html}"
    );
}

#[test]
fn a_wrong_smtp_password_is_refused_without_retries_and_without_showing_it() {
    let sink = SmtpSink::start(0, Some(("alerts@contoso.com", "right-password")));
    let extra = r#"to = ["m365-admins@contoso.com"]
username = "alerts@contoso.com"
password_env = "TEST_SMTP_PASSWORD""#;
    let setup = Setup::new(&email_channel("admins", sink.port, extra));

    let output = setup
        .command(&["--digest", "digest.json"])
        .env("TEST_SMTP_PASSWORD", "wrong-password")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("channel `admins` to m365-admins@contoso.com: refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(sink.messages().is_empty());
}

#[test]
fn a_missing_password_variable_is_named() {
    let extra = r#"to = ["a@contoso.com"]
username = "alerts@contoso.com"
password_env = "TEST_SMTP_PASSWORD_UNSET""#;
    let setup = Setup::new(&email_channel("admins", closed_port(), extra));
    let output = setup
        .command(&["--digest", "digest.json"])
        .env_remove("TEST_SMTP_PASSWORD_UNSET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("environment variable TEST_SMTP_PASSWORD_UNSET is not set"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn starttls_verifies_the_servers_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let sink = SmtpSink::start_with(
        0,
        None,
        &[("SMTP_SINK_CERT", &cert), ("SMTP_SINK_KEY", &key)],
    );
    let config = email_channel("admins", sink.port, "to = [\"a@contoso.com\"]")
        .replace("tls = \"none\"", "tls = \"starttls\"");
    let setup = Setup::new(&config);

    let output = setup.command(&["--test", "admins"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("channel `admins` to a@contoso.com"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid peer certificate"),
        "a self-signed certificate is refused: {stderr}"
    );
    assert!(sink.messages().is_empty());
}

#[test]
fn owners_get_only_their_own_groups_and_ownerless_findings_go_to_the_fallback() {
    let sink = SmtpSink::start(0, None);
    let extra = r#"to = "group-owners"
fallback_to = ["m365-admins@contoso.com"]
rules = ["inactive-*", "external-*", "public-*", "ownerless-*"]"#;
    let setup = Setup::new(&email_channel("owners", sink.port, extra));

    let output = setup
        .command(&["--digest", "digest.json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));

    let mut by_recipient = std::collections::BTreeMap::new();
    for message in sink.messages() {
        let to = message["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        by_recipient.insert(
            to,
            mime_part(message["data"].as_str().unwrap(), "text/plain"),
        );
    }
    assert_eq!(
        by_recipient.keys().collect::<Vec<_>>(),
        [
            "adele.vance@contoso.com",
            "m365-admins@contoso.com",
            "megan.bowen@contoso.com"
        ]
    );
    let adele = &by_recipient["adele.vance@contoso.com"];
    assert!(
        adele.contains("Sales EMEA") && adele.contains("Vendors"),
        "{adele}"
    );
    assert!(
        !adele.contains("Old Wiki") && !adele.contains("Project Phoenix"),
        "{adele}"
    );
    assert!(
        !adele.contains("Retired Team"),
        "resolved findings stay out without include_resolved: {adele}"
    );
    assert!(
        !adele.contains("Board Archive"),
        "exemptions are for administrators: {adele}"
    );
    let megan = &by_recipient["megan.bowen@contoso.com"];
    assert!(
        megan.contains("Old Wiki") && megan.contains("Board <Confidential> & Co"),
        "owner addresses are matched case-blind: {megan}"
    );
    assert!(!megan.contains("Sales EMEA"), "{megan}");
    let admins = &by_recipient["m365-admins@contoso.com"];
    assert!(
        admins.contains("Project Phoenix") && !admins.contains("Sales EMEA"),
        "{admins}"
    );
}

#[test]
fn the_per_owner_cap_lists_the_most_severe_and_counts_the_rest() {
    let setup = Setup::new(&email_channel(
        "owners",
        closed_port(),
        "to = \"group-owners\"\nmax_findings_per_owner = 1",
    ));
    let planned = notify::plan(
        &setup.channels(),
        &serde_json::from_value(digest()).unwrap(),
    );
    let megan = planned
        .iter()
        .find(|p| p.recipient == "megan.bowen@contoso.com")
        .unwrap();
    assert_eq!(megan.digest.items.len(), 1);
    assert_eq!(
        megan.digest.items[0].rule, "public-with-guests",
        "the critical finding is kept"
    );
    assert_eq!(
        megan.digest.counts.new + megan.digest.counts.reminders,
        2,
        "counts cover everything"
    );
    let capped = megan.digest.capped.as_ref().unwrap();
    assert_eq!((capped.shown, capped.total), (1, 2));
}

#[test]
fn more_owners_than_the_safety_cap_mails_the_fallback_instead() {
    let extra = "to = \"group-owners\"\nfallback_to = [\"m365-admins@contoso.com\"]\nmax_owner_messages = 1";
    let setup = Setup::new(&email_channel("owners", closed_port(), extra));
    let planned = notify::plan(
        &setup.channels(),
        &serde_json::from_value(digest()).unwrap(),
    );
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].recipient, "m365-admins@contoso.com");
    assert_eq!(planned[0].digest.items.len(), 5);
    assert!(
        planned[0]
            .digest
            .capped
            .as_ref()
            .unwrap()
            .reason
            .contains("max_owner_messages = 1")
    );
}

#[test]
fn min_severity_and_rule_globs_route_findings() {
    let config = [
        email_channel("urgent", closed_port(), "to = [\"oncall@contoso.com\"]\nmin_severity = \"high\""),
        email_channel("hygiene", closed_port(), "to = [\"it@contoso.com\"]\nrules = [\"inactive-*\"]\nexclude_rules = [\"*-groups-legacy\"]"),
        email_channel("nothing", closed_port(), "to = [\"it@contoso.com\"]\nrules = [\"no-such-rule\"]"),
    ]
    .concat();
    let setup = Setup::new(&config);
    let planned = notify::plan(
        &setup.channels(),
        &serde_json::from_value(digest()).unwrap(),
    );

    let channels: Vec<&str> = planned.iter().map(|p| p.channel.as_str()).collect();
    assert_eq!(
        channels,
        ["urgent", "hygiene"],
        "a channel with nothing to say sends nothing"
    );
    let mut quiet: Digest = serde_json::from_value(digest()).unwrap();
    quiet.items.clear();
    quiet.expiring_exemptions.clear();
    assert!(
        notify::plan(&setup.channels(), &quiet).is_empty(),
        "a scan with no changes sends no message"
    );
    let rules = |p: &Planned| {
        p.digest
            .items
            .iter()
            .map(|i| format!("{}:{}", i.severity, i.rule))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rules(&planned[0]),
        ["critical:public-with-guests", "high:ownerless-groups"]
    );
    assert_eq!(planned[0].digest.counts.new, 2);
    assert_eq!(
        rules(&planned[1]),
        ["medium:inactive-groups", "medium:inactive-groups"]
    );
    assert_eq!(
        (
            planned[1].digest.counts.new,
            planned[1].digest.counts.reminders,
            planned[1].digest.counts.resolved
        ),
        (1, 1, 0)
    );
}

#[test]
fn a_channel_down_for_a_whole_run_fails_every_message_then_delivers_on_the_next() {
    let port = closed_port();
    let setup = Setup::new(&email_channel(
        "owners",
        port,
        "to = \"group-owners\"\nfallback_to = [\"m365-admins@contoso.com\"]",
    ));
    let channels = setup.channels();
    let planned = notify::plan(&channels, &serde_json::from_value(digest()).unwrap());
    assert_eq!(planned.len(), 3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let courier = Courier::new().unwrap();

    let first = runtime.block_on(courier.deliver_all(&channels, &planned));
    assert_eq!(first.delivered(), 0);
    assert_eq!(
        first.results.len(),
        3,
        "every planned message has an outcome: nothing is dropped"
    );
    let errors: Vec<String> = first.failures().map(ToString::to_string).collect();
    assert!(errors[0].contains("gave up after 2 attempts"), "{errors:?}");
    assert!(
        errors[1].contains("not tried, the channel failed earlier in this run"),
        "{errors:?}"
    );

    // The next run: the server is back, the undelivered messages go out.
    let sink = SmtpSink::start(port, None);
    let retry: Vec<Planned> = planned
        .iter()
        .zip(&first.results)
        .filter(|(_, r)| r.is_err())
        .map(|(p, _)| p.clone())
        .collect();
    let second = runtime.block_on(Courier::new().unwrap().deliver_all(&channels, &retry));
    assert_eq!(
        second.delivered(),
        3,
        "{:?}",
        second
            .failures()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test]
async fn a_failing_channel_makes_the_command_exit_2_after_the_others_were_tried() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&receiver)
        .await;
    let webhook = format!(
        "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}/hook\"\n",
        receiver.uri()
    );
    let setup = Setup::new(
        &[
            email_channel("mail", closed_port(), "to = [\"a@contoso.com\"]"),
            webhook,
        ]
        .concat(),
    );

    let output = run(setup.command(&["--digest", "digest.json"])).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("channel `mail` to a@contoso.com: gave up after 2 attempts"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 messages delivered"), "{stderr}");
    receiver.verify().await;
}

// --------------------------------------------------------------- webhooks

fn verify_signature(request: &wiremock::Request) {
    let timestamp = request
        .headers
        .get("x-groupwarden-timestamp")
        .expect("a timestamp header")
        .to_str()
        .unwrap();
    let signature = request
        .headers
        .get("x-groupwarden-signature")
        .expect("a signature header")
        .to_str()
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let hex = signature.strip_prefix("sha256=").expect("sha256= prefix");
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex, expected,
        "the signature is HMAC-SHA256 over \"<timestamp>.<body>\""
    );
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_after_503_and_429_with_retry_after() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/groupwarden"))
        .and(header("content-type", "application/json"))
        .and(header("x-team", "it"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let config = format!(
        r#"
[[notify]]
type = "webhook"
url = "{}/groupwarden"
secret_env = "TEST_WEBHOOK_SECRET"
headers = {{ "X-Team" = "it" }}
retries = 3
retry_backoff_ms = 10
"#,
        receiver.uri()
    );
    let setup = Setup::new(&config);

    let mut command = setup.command(&["--digest", "digest.json"]);
    command.env("TEST_WEBHOOK_SECRET", WEBHOOK_KEY);
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "503, then 429, then delivered");
    for request in &requests {
        verify_signature(request);
    }
    let payload: Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(payload["version"], 1);
    assert_eq!(payload["event"], "digest");
    assert_eq!(payload["scan"]["tenant"], "Contoso");
    assert_eq!(payload["counts"]["new"], 3);
    let first = &payload["findings"][0];
    assert_eq!(first["key"], "public-with-guests:g-board");
    assert_eq!(first["status"], "new");
    assert_eq!(first["severity"], "critical");
    assert_eq!(
        first["group"],
        json!({"id": "g-board", "name": "Board <Confidential> & Co", "owner": "megan.bowen@contoso.com"})
    );
    assert_eq!(
        first["evidence"],
        json!({"days_since_activity": 212, "last_activity": null})
    );
}

#[tokio::test]
async fn every_webhook_request_names_its_delivery_and_chat_payloads_only_in_the_header() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let config = format!(
        "[[notify]]\nname = \"json\"\ntype = \"webhook\"\nurl = \"{uri}/json\"\n\n\
         [[notify]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"{uri}/slack\"\n\n\
         [[notify]]\nname = \"teams\"\ntype = \"webhook\"\nformat = \"teams\"\nurl = \"{uri}/teams\"\n",
        uri = receiver.uri()
    );
    let setup = Setup::new(&config);

    let output = run(setup.command(&["--digest", "digest.json"])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let mut ids = Vec::new();
    for request in &requests {
        let id = request.headers["x-groupwarden-delivery"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.starts_with("gw-direct-") && id.len() == 42, "{id}");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        match request.url.path() {
            "/json" => assert_eq!(body["delivery_id"], id.as_str()),
            // Slack and Teams refuse fields they do not know.
            _ => assert!(body.get("delivery_id").is_none(), "{body}"),
        }
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "one id per message");
}

#[tokio::test]
async fn a_webhook_url_is_never_shown_in_errors() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such hook"))
        .mount(&receiver)
        .await;
    let setup = Setup::new(
        "[[notify]]\ntype = \"webhook\"\nformat = \"slack\"\nurl_env = \"TEST_HOOK_URL\"\n",
    );
    let mut command = setup.command(&["--digest", "digest.json"]);
    command.env(
        "TEST_HOOK_URL",
        format!("{}/services/T000/B000/XXXXSECRETXXXX", receiver.uri()),
    );

    let output = run(command).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("refused: HTTP 404 Not Found: no such hook"),
        "a 404 is not retried: {stderr}"
    );
    assert!(
        !stderr.contains("XXXXSECRETXXXX") && !text(&output.stdout).contains("XXXXSECRETXXXX"),
        "{stderr}"
    );
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);
}

#[test]
fn webhooks_need_https_except_on_this_machine_and_plain_smtp_only_locally() {
    let setup = Setup::new(
        r#"
[[notify]]
type = "webhook"
url = "http://hooks.example.com/groupwarden"

[[notify]]
type = "email"
smtp_host = "smtp.example.com"
tls = "none"
from = "a@example.com"
to = ["b@example.com"]
smtp_port = 25
url_env = "X"
"#,
    );
    let output = setup.command(&["--test", "webhook"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("groupwarden.toml"), "{stderr}");
    assert!(
        stderr.contains(
            "[[notify]] #1 `webhook`: `url` (http://hooks.example.com/…): must use https"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("[[notify]] #2 `email`: `url_env` does not apply to email channels"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`tls = \"none\"` is only allowed for an SMTP server on this machine"),
        "{stderr}"
    );
}

#[test]
fn chat_messages_stay_within_the_services_limits() {
    let mut digest: Digest = serde_json::from_value(digest()).unwrap();
    let template = digest.items[1].clone();
    digest.items = (0..400)
        .map(|n| {
            let mut item = template.clone();
            item.key = format!("inactive-groups:g{n}");
            item.group_name = Some(format!("Group number {n} with a fairly long display name"));
            item.message = "No activity for a long time; ".repeat(20);
            item
        })
        .collect();
    let config = "[[notify]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"https://hooks.example.com/s\"\n\
                  [[notify]]\nname = \"teams\"\ntype = \"webhook\"\nformat = \"teams\"\nurl = \"https://hooks.example.com/t\"\n";
    let setup = Setup::new(config);
    let channels = setup.channels();
    for planned in notify::plan(&channels, &digest) {
        let channel = channels
            .iter()
            .find(|c| c.name() == planned.channel)
            .unwrap();
        let Rendered::Webhook(webhook) = notify::render(channel, &planned).unwrap() else {
            panic!("a webhook body")
        };
        let body: Value = serde_json::from_str(&webhook.body).unwrap();
        let more = and_n_more(&webhook.body);
        assert!(
            more > 0 && more < 400,
            "{}: an \"and N more\" line: {more}",
            planned.channel
        );
        if planned.channel == "slack" {
            assert!(body["blocks"].as_array().unwrap().len() <= 50);
            assert!(webhook.body.len() <= 40_000);
        } else {
            assert!(webhook.body.len() <= 27_000, "{}", webhook.body.len());
            assert_eq!(
                body["attachments"][0]["contentType"],
                "application/vnd.microsoft.card.adaptive"
            );
        }
    }
}

/// The N of "… and N more." in a body.
fn and_n_more(body: &str) -> usize {
    let at = body.find("… and ").expect("an \"and N more\" line") + "… and ".len();
    body[at..].split(' ').next().unwrap().parse().unwrap()
}

// ------------------------------------------------------------- graph mail

#[tokio::test]
async fn graph_mail_posts_send_mail_with_the_bearer_token() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/alerts@contoso.com/sendMail"))
        .and(header("authorization", "Bearer test-graph-token"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&graph)
        .await;
    let config = format!(
        "[[notify]]\ntype = \"graph-mail\"\nfrom = \"alerts@contoso.com\"\nto = [\"m365-admins@contoso.com\"]\ngraph_url = \"{}\"\n",
        graph.uri()
    );
    let setup = Setup::new(&config);

    let without_token = run(setup.command(&["--digest", "digest.json"])).await;
    assert_eq!(without_token.status.code(), Some(2));
    assert!(
        text(&without_token.stderr).contains(
            "graph-mail sends with the app registration of [source], which is not usable"
        ),
        "{}",
        text(&without_token.stderr)
    );

    let mut command = setup.command(&["--digest", "digest.json"]);
    command.env("GROUPWARDEN_GRAPH_TOKEN", "test-graph-token");
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    graph.verify().await;
    let request = &graph.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body["message"]["subject"],
        "[groupwarden] Contoso: 3 new, 1 flagged again, 1 reminder, 1 expiring exemption"
    );
    assert_eq!(
        body["message"]["toRecipients"],
        json!([{"emailAddress": {"address": "m365-admins@contoso.com"}}])
    );
    assert_eq!(body["message"]["body"]["contentType"], "HTML");
    assert!(
        body["message"]["body"]["content"]
            .as_str()
            .unwrap()
            .contains("Board &lt;Confidential&gt; &amp; Co")
    );
    assert!(
        body["message"].get("attachments").is_none(),
        "everything is listed: no attachment"
    );
    assert_eq!(body["saveToSentItems"], false);
}

#[tokio::test]
async fn graph_mail_gets_its_token_from_the_sources_app_registration() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/contoso-tenant/oauth2/v2.0/token"))
        .and(wiremock::matchers::body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "token-from-client-credentials", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/users/alerts@contoso.com/sendMail"))
        .and(header(
            "authorization",
            "Bearer token-from-client-credentials",
        ))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&graph)
        .await;
    let uri = graph.uri();
    let config = format!(
        "[source]\ntype = \"graph\"\ntenant_id = \"contoso-tenant\"\nclient_id = \"app-id\"\n\
         client_secret_env = \"TEST_CLIENT_SECRET\"\nauthority_url = \"{uri}\"\ngraph_url = \"{uri}\"\n\
         [[notify]]\ntype = \"graph-mail\"\nfrom = \"alerts@contoso.com\"\nto = [\"a@contoso.com\"]\ngraph_url = \"{uri}\"\n"
    );
    let setup = Setup::new(&config);
    let mut command = setup.command(&["--test", "graph-mail"]);
    command.env("TEST_CLIENT_SECRET", "client-secret-value");
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains("client-secret-value"));
    graph.verify().await;
}

// ------------------------------------------------------ templates, commands

#[test]
fn a_template_override_replaces_the_built_in_one() {
    let setup = Setup::new(&email_channel(
        "admins",
        closed_port(),
        "to = [\"a@contoso.com\"]\ntemplate_dir = \"mail\"",
    ));
    std::fs::create_dir(setup.path("mail")).unwrap();
    std::fs::write(
        setup.path("mail/email-subject.txt"),
        "Governance: {{ counts.new }} new in {{ title }}",
    )
    .unwrap();

    let output = setup
        .command(&["--digest", "digest.json", "--dry-run"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Subject: Governance: 3 new in Contoso\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("== ownerless-groups (high)"),
        "the other templates stay built in: {stdout}"
    );
}

#[test]
fn a_broken_template_is_a_config_error_before_anything_is_sent() {
    let setup = Setup::new(&email_channel(
        "admins",
        closed_port(),
        "to = [\"a@contoso.com\"]\ntemplate_dir = \"mail\"",
    ));
    std::fs::create_dir(setup.path("mail")).unwrap();
    std::fs::write(
        setup.path("mail/email.html"),
        "<p>\n{% for item in items %}\n{{ item.group }}\n",
    )
    .unwrap();
    let output = setup
        .command(&["--digest", "digest.json", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("email.html, line 3: syntax error"),
        "{stderr}"
    );

    // A misspelt name only shows when rendering: validation renders a sample.
    std::fs::write(setup.path("mail/email.html"), "<p>{{ conuts.new }}</p>").unwrap();
    let output = setup.command(&["--test", "admins"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("email.html, line 1: undefined value"),
        "{stderr}"
    );
}

#[test]
fn a_test_message_goes_to_the_channel_even_when_its_filters_match_nothing() {
    let sink = SmtpSink::start(0, None);
    let setup = Setup::new(&email_channel(
        "admins",
        sink.port,
        "to = [\"a@contoso.com\"]\nrules = [\"nothing\"]",
    ));
    let output = setup.command(&["--test", "admins"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        subject(messages[0]["data"].as_str().unwrap()),
        "[groupwarden] Test message for Contoso"
    );

    let output = setup.command(&["--test", "admin"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("no [[notify]] channel named `admin` (channels: admins)")
    );
}

#[test]
fn dry_run_writes_every_message_to_a_folder_and_sends_nothing() {
    let extra = "to = \"group-owners\"\nfallback_to = [\"m365-admins@contoso.com\"]";
    let setup = Setup::new(&email_channel("owners", closed_port(), extra));
    let output = setup
        .command(&["--digest", "digest.json", "--dry-run", "--out", "preview"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut files: Vec<String> = std::fs::read_dir(setup.path("preview"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "001-owners-adele.vance@contoso.com.html",
            "001-owners-adele.vance@contoso.com.txt",
            "002-owners-megan.bowen@contoso.com.html",
            "002-owners-megan.bowen@contoso.com.txt",
            "003-owners-m365-admins@contoso.com.html",
            "003-owners-m365-admins@contoso.com.txt",
        ]
    );
    let adele =
        std::fs::read_to_string(setup.path("preview/001-owners-adele.vance@contoso.com.txt"))
            .unwrap();
    assert!(
        adele.starts_with(
            "To: adele.vance@contoso.com\nSubject: [groupwarden] Contoso: 2 groups need attention\n"
        ),
        "{adele}"
    );
}

// -------------------------------------------------------------- snapshots

/// Every rendering of one fixed digest, for review in `tests/integration/snapshots/`.
#[test]
fn rendered_messages_match_their_snapshots() {
    let config = "[[notify]]\nname = \"admins\"\ntype = \"email\"\nsmtp_host = \"smtp.example.com\"\n\
                  from = \"groupwarden <alerts@contoso.com>\"\nto = [\"m365-admins@contoso.com\"]\ninclude_resolved = true\n\
                  [[notify]]\nname = \"json\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/j\"\ninclude_resolved = true\n\
                  [[notify]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"https://hooks.example.com/s\"\n\
                  [[notify]]\nname = \"teams\"\ntype = \"webhook\"\nformat = \"teams\"\nurl = \"https://hooks.example.com/t\"\n";
    let setup = Setup::new(config);
    let channels = setup.channels();
    let planned = notify::plan(&channels, &serde_json::from_value(digest()).unwrap());
    assert_eq!(planned.len(), 4);
    for message in &planned {
        let channel = channels
            .iter()
            .find(|c| c.name() == message.channel)
            .unwrap();
        match notify::render(channel, message).unwrap() {
            Rendered::Email(email) => {
                insta::assert_snapshot!("email_subject", email.subject);
                insta::assert_snapshot!("email_text", email.text);
                insta::assert_snapshot!("email_html", email.html);
            }
            Rendered::Webhook(webhook) => {
                let pretty = serde_json::to_string_pretty(
                    &serde_json::from_str::<Value>(&webhook.body).unwrap(),
                )
                .unwrap();
                insta::assert_snapshot!(format!("webhook_{}", message.channel), pretty);
            }
        }
    }
}

#[test]
fn digests_round_trip_through_json_as_the_outbox_keeps_them() {
    let digest: Digest = serde_json::from_value(digest()).unwrap();
    let setup = Setup::new(&email_channel(
        "owners",
        closed_port(),
        "to = \"group-owners\"",
    ));
    for planned in notify::plan(&setup.channels(), &digest) {
        let stored = serde_json::to_string(&planned).unwrap();
        assert_eq!(serde_json::from_str::<Planned>(&stored).unwrap(), planned);
    }
}

// ------------------------------------------------------------------- docs

/// The code block of `language` in docs/notifications.md that contains `marker`.
fn documented_code(language: &str, marker: &str) -> String {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/notifications.md"),
    )
    .unwrap();
    let fence = format!("```{language}\n");
    docs.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .find(|code| code.contains(marker))
        .unwrap_or_else(|| panic!("no {language} block with {marker:?} in docs/notifications.md"))
}

#[test]
fn the_documented_signature_checks_accept_groupwarden_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"{"version":1,"event":"test"}"#;
    std::fs::write(dir.path().join("body.json"), body).unwrap();
    let timestamp = jiff::Timestamp::now().as_second();
    let signature = notify::webhook::signature(WEBHOOK_KEY.as_bytes(), timestamp, body.as_bytes());

    let python = documented_code("python", "def verify");
    let check = format!(
        "{python}\nimport sys\nbody = open(sys.argv[3], 'rb').read()\nprint(verify(b'{WEBHOOK_KEY}', sys.argv[1], sys.argv[2], body), verify(b'{WEBHOOK_KEY}', sys.argv[1], sys.argv[2], body + b' '))"
    );
    let output = Command::new("python3")
        .args([
            "-c",
            &check,
            &timestamp.to_string(),
            &signature,
            dir.path().join("body.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&output.stdout).trim(),
        "True False",
        "{}",
        text(&output.stderr)
    );

    let shell = documented_code("sh", "openssl dgst");
    let run_shell = |sig: &str| {
        let output = Command::new("sh")
            .args(["-c", &shell])
            .current_dir(dir.path())
            .env("TS", timestamp.to_string())
            .env("SIG", sig)
            .env("GROUPWARDEN_WEBHOOK_SECRET", WEBHOOK_KEY)
            .output()
            .unwrap();
        text(&output.stdout).trim().to_owned()
    };
    assert_eq!(run_shell(&signature), "valid");
    assert_eq!(run_shell("sha256=0000"), "INVALID");
}

// ------------------------------------------------------ hostile names, totals

/// One message of every format (email, Slack, Teams) for `digest`.
fn render_every_format(digest: &Digest) -> Vec<(String, Rendered)> {
    let config = "[[notify]]\nname = \"email\"\ntype = \"email\"\nsmtp_host = \"smtp.example.com\"\n\
                  from = \"groupwarden <alerts@contoso.com>\"\nto = [\"m365-admins@contoso.com\"]\n\
                  [[notify]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = \"https://hooks.example.com/s\"\n\
                  [[notify]]\nname = \"teams\"\ntype = \"webhook\"\nformat = \"teams\"\nurl = \"https://hooks.example.com/t\"\n";
    let setup = Setup::new(config);
    let channels = setup.channels();
    notify::plan(&channels, digest)
        .iter()
        .map(|planned| {
            let channel = channels
                .iter()
                .find(|c| c.name() == planned.channel)
                .unwrap();
            (
                planned.channel.clone(),
                notify::render(channel, planned).unwrap(),
            )
        })
        .collect()
}

/// Every `"text"` string in a chat payload, wherever it is nested.
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

fn webhook_texts(rendered: &Rendered) -> Vec<String> {
    let Rendered::Webhook(webhook) = rendered else {
        panic!("a webhook body")
    };
    let mut found = Vec::new();
    texts(&serde_json::from_str(&webhook.body).unwrap(), &mut found);
    found
}

const PHISHING_NAME: &str = "[Reset your password](https://evil.example/login)";

/// A digest whose user-supplied strings are all hostile.
fn hostile_digest() -> Digest {
    let mut digest: Digest = serde_json::from_value(digest()).unwrap();
    digest.scan.tenant = Some("Smith & Sons <!here>".into());
    for (n, item) in digest.items.iter_mut().enumerate() {
        item.group_name = Some(format!("{PHISHING_NAME} *bold* <!channel> R&D\u{7}\n# {n}"));
        item.owner = Some("[owner](https://evil.example/o)@x.com".into());
        item.message = "`code` _it_ ~s~ <https://evil.example|click> & | > quote".into();
    }
    digest.expiring_exemptions[0].group = PHISHING_NAME.into();
    digest.expiring_exemptions[0].reason = "**[see](http://www.evil.example)** <!channel> &".into();
    digest
}

#[test]
fn hostile_names_stay_text_in_every_format() {
    let rendered = render_every_format(&hostile_digest());
    assert_eq!(rendered.len(), 3);
    for (channel, message) in &rendered {
        match channel.as_str() {
            "teams" => {
                let texts = webhook_texts(message);
                let all = texts.join("\n");
                assert!(all.contains(r"\[Reset your password\]\(https:"), "{all}");
                for text in &texts {
                    assert!(!text.contains("]("), "a Markdown link in Teams: {text}");
                    assert!(!text.contains("://"), "an autolink in Teams: {text}");
                    assert!(!text.contains("www."), "an autolink in Teams: {text}");
                    assert!(!text.contains(" *bold*"), "Markdown emphasis: {text}");
                    assert!(!text.contains('\u{7}') && !text.contains('\n'), "{text:?}");
                }
            }
            "slack" => {
                let texts = webhook_texts(message);
                let all = texts.join("\n");
                assert!(all.contains("Smith &amp; Sons &lt;!here&gt;"), "{all}");
                assert!(all.contains("&lt;!channel&gt; R&amp;D"), "{all}");
                for text in &texts {
                    assert!(!text.contains('<') && !text.contains('>'), "{text}");
                    let unescaped = text.match_indices('&').any(|(at, _)| {
                        !["&amp;", "&lt;", "&gt;"]
                            .iter()
                            .any(|e| text[at..].starts_with(e))
                    });
                    assert!(!unescaped, "an unescaped & in Slack: {text}");
                    assert!(!text.contains('\u{7}'), "{text:?}");
                }
            }
            "email" => {
                let Rendered::Email(email) = message else {
                    panic!("an email")
                };
                assert!(!email.html.contains("<!channel>"), "{}", email.html);
                assert!(!email.html.contains("<!here>"));
                assert!(!email.html.contains("<https://evil"));
                assert!(email.html.contains("&lt;!channel&gt; R&amp;D"));
                assert!(email.html.contains("Smith &amp; Sons &lt;!here&gt;"));
            }
            other => panic!("unexpected channel {other}"),
        }
    }
}

/// `count` items of `rule`, each with a long message.
fn many_items(template: &Value, rule: &str, severity: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| {
            let mut item = template.clone();
            item["rule"] = json!(rule);
            item["severity"] = json!(severity);
            item["status"] = json!("new");
            item["key"] = json!(format!("{rule}:g{n}"));
            item["group_name"] = json!(format!("Group number {n} with a fairly long display name"));
            item["message"] = json!("No activity for a long time; ".repeat(20));
            item
        })
        .collect()
}

#[test]
fn chat_headings_give_every_rules_true_total_even_when_not_listed() {
    let mut value = digest();
    let template = value["items"][1].clone();
    let mut items = many_items(&template, "ownerless-groups", "high", 300);
    items.extend(many_items(&template, "inactive-groups", "medium", 163));
    items.extend(many_items(&template, "external-members", "low", 56));
    value["items"] = json!(items);
    let mut digest: Digest = serde_json::from_value(value).unwrap();
    digest.sort();
    for (channel, message) in render_every_format(&digest) {
        let all = match &message {
            // Teams escapes the rule ids' `-` for Markdown.
            Rendered::Webhook(_) => webhook_texts(&message).join("\n").replace("\\-", "-"),
            Rendered::Email(email) => email.text.clone(),
        };
        if channel == "email" {
            assert!(all.contains("inactive-groups (medium): 163"), "{all}");
            continue;
        }
        let heading = |rule: &str| {
            all.lines()
                .find(|line| line.contains(rule) && line.contains("): "))
                .unwrap_or_else(|| panic!("{channel}: no heading for {rule}:\n{all}"))
                .to_owned()
        };
        assert!(
            heading("ownerless-groups").contains("(high): 300 — "),
            "{channel}"
        );
        assert!(heading("ownerless-groups").contains(" listed"), "{channel}");
        assert!(
            heading("inactive-groups").contains("(medium): 163 — not listed"),
            "{channel}: {}",
            heading("inactive-groups")
        );
        assert!(
            heading("external-members").contains("(low): 56 — not listed"),
            "{channel}"
        );
    }
}

/// `count` exemptions expiring soon, with hostile group names.
fn many_exemptions(count: usize) -> Value {
    json!((0..count)
        .map(|n| json!({
            "rule": "inactive-groups",
            "group": format!("{PHISHING_NAME} {n}"),
            "reason": "Legal hold until the audit of the whole department is over; ask legal".to_string(),
            "expires": "2026-12-01"
        }))
        .collect::<Vec<_>>())
}

#[test]
fn a_teams_card_fits_28_kb_with_3000_findings_and_150_expiring_exemptions() {
    let mut value = digest();
    let template = value["items"][1].clone();
    let mut items = many_items(&template, "ownerless-groups", "high", 1500);
    items.extend(many_items(&template, "inactive-groups", "medium", 1000));
    items.extend(many_items(&template, "external-members", "low", 500));
    for item in &mut items {
        item["group_name"] = json!(format!("{PHISHING_NAME} {}", item["key"]));
    }
    value["items"] = json!(items);
    value["expiring_exemptions"] = many_exemptions(150);
    let mut digest: Digest = serde_json::from_value(value).unwrap();
    digest.sort();
    for (channel, message) in render_every_format(&digest) {
        let Rendered::Webhook(webhook) = &message else {
            continue;
        };
        // Teams escapes `-`; Slack puts rule ids in bold.
        let all = webhook_texts(&message)
            .join("\n")
            .replace("\\-", "-")
            .replace('*', "");
        if channel == "teams" {
            assert!(webhook.body.len() <= 28_000, "{}", webhook.body.len());
            assert!(!all.contains("]("), "a Markdown link in Teams");
        } else {
            assert!(webhook.body.len() <= 40_000, "{}", webhook.body.len());
        }
        assert!(
            all.contains("ownerless-groups (high): 1500"),
            "{channel}: {all}"
        );
        assert!(all.contains("inactive-groups (medium): 1000"), "{channel}");
        assert!(all.contains("external-members (low): 500"), "{channel}");
        assert!(all.contains("Exemptions expiring soon: 150"), "{channel}");
        assert!(and_n_more(&webhook.body) > 0, "{channel}");
    }
}

#[test]
fn expiring_exemptions_alone_are_listed_as_far_as_they_fit() {
    let mut value = digest();
    value["items"] = json!([]);
    value["expiring_exemptions"] = many_exemptions(150);
    let digest: Digest = serde_json::from_value(value).unwrap();
    for (channel, message) in render_every_format(&digest) {
        let Rendered::Webhook(webhook) = &message else {
            continue;
        };
        let all = webhook_texts(&message).join("\n");
        assert!(all.contains("Exemptions expiring soon: 150"), "{channel}");
        let listed = all.matches("Reset your password").count();
        assert!(listed > 0 && listed < 150, "{channel}: {listed} listed");
        if channel == "teams" {
            assert!(webhook.body.len() <= 28_000, "{}", webhook.body.len());
            let more = and_n_more(&webhook.body);
            assert_eq!(listed + more, 150, "{all}");
        }
    }
}

#[test]
fn a_slack_message_names_40_rules_within_50_blocks() {
    let mut value = digest();
    let template = value["items"][1].clone();
    let items: Vec<Value> = (0..40)
        .flat_map(|n| many_items(&template, &format!("custom-rule-{n:02}"), "medium", 10))
        .collect();
    value["items"] = json!(items);
    let mut digest: Digest = serde_json::from_value(value).unwrap();
    digest.sort();
    let (_, slack) = render_every_format(&digest)
        .into_iter()
        .find(|(channel, _)| channel == "slack")
        .unwrap();
    let Rendered::Webhook(webhook) = &slack else {
        panic!("a webhook body")
    };
    let body: Value = serde_json::from_str(&webhook.body).unwrap();
    assert!(body["blocks"].as_array().unwrap().len() <= 50);
    let all = webhook_texts(&slack).join("\n");
    for n in 0..40 {
        assert!(
            all.contains(&format!("*custom-rule-{n:02}* (medium): 10")),
            "rule {n} is not named:\n{all}"
        );
    }
}
