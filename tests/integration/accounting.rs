//! Announcement accounting per channel, on the owner journey of a
//! 2,000-group report: held visibly under the default caps, every owner
//! mailed exactly once after raising them, silent on an unchanged rerun,
//! a channel added later served its backlog once, an expiring exemption
//! announced once, a `min_severity = "high"` channel never sent zeros or
//! an empty digest; and a failing webhook whose findings go out when it
//! recovers while the other channel is not sent them again. Real binary,
//! real SQLite file, the real SMTP sink and an HTTP receiver on loopback.

use std::collections::BTreeMap;
use std::process::Output;

use crate::notify::SmtpSink;
use crate::util::*;
use serde_json::Value;
use tempfile::TempDir;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const GROUPS: usize = 2000;
const OWNERS: usize = 1000;

async fn run(mut command: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// 2,000 groups, all inactive (medium); every fourth has 12 guests
/// (high). Group `i` is owned by `owner<i % 1000>`, so each of the 1,000
/// owners has two groups.
fn journey_report() -> String {
    let rows: Vec<String> = (0..GROUPS)
        .map(|i| {
            Group {
                name: &format!("Group {i}"),
                owner: &format!("owner{}@contoso.com", i % OWNERS),
                last_activity: "2026-01-10",
                external: if i % 4 == 0 { "12" } else { "0" },
                members: "20",
                id: &format!("{i:08x}-0000-4000-8000-000000000000"),
                ..Default::default()
            }
            .csv()
        })
        .collect();
    report(&rows)
}

struct Journey {
    dir: TempDir,
    smtp_port: u16,
    hook: String,
}

impl Journey {
    fn email(&self, name: &str, to: &str, extra: &str) -> String {
        format!(
            "[[notify]]\nname = \"{name}\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
             from = \"alerts@contoso.com\"\nto = {to}\nretries = 0\n{extra}\n",
            self.smtp_port
        )
    }

    /// Writes the config: the `[state]` keys given, the channels given.
    fn config(&self, state: &str, channels: &[String]) {
        let soon = jiff::Zoned::now()
            .date()
            .checked_add(jiff::Span::new().days(5))
            .unwrap();
        write(
            self.dir.path(),
            "groupwarden.toml",
            &format!(
                "[rules]\ndir = \"{}\"\n\n[state]\npath = \"gw.db\"\n{state}\n\n\
                 [[exemptions]]\nrule = \"inactive-groups\"\ngroup_name = \"Group 7\"\nreason = \"Kept for legal hold\"\nexpires = \"{soon}\"\n\n{}",
                bundled_rules().display(),
                channels.join("\n"),
            ),
        );
    }

    fn scan(&self) -> assert_cmd::Command {
        let mut command = gw(self.dir.path());
        command.args([
            "scan",
            "--input",
            "r.csv",
            "--format",
            "jsonl",
            "--output",
            "out.jsonl",
        ]);
        command
    }
}

/// Messages per recipient address.
fn by_recipient(messages: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in messages {
        for to in message["rcpt_tos"].as_array().unwrap() {
            map.entry(to.as_str().unwrap().to_owned())
                .or_default()
                .push(message["data"].as_str().unwrap_or_default().to_owned());
        }
    }
    map
}

async fn hook_bodies(receiver: &MockServer) -> Vec<Value> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn counted(body: &Value) -> u64 {
    [
        "new",
        "reopened",
        "reminders",
        "resolved",
        "expiring_exemptions",
    ]
    .iter()
    .map(|k| body["counts"][k].as_u64().unwrap())
    .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_journey_holds_visibly_then_mails_each_owner_once() {
    let sink = SmtpSink::start(0, None);
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let journey = Journey {
        dir: TempDir::new().unwrap(),
        smtp_port: sink.port,
        hook: format!(
            "[[notify]]\nname = \"late-high\"\ntype = \"webhook\"\nurl = \"{}/hook\"\nmin_severity = \"high\"\nretries = 0\n",
            receiver.uri()
        ),
    };
    write(journey.dir.path(), "r.csv", &journey_report());
    let owners = journey.email("owners", "\"group-owners\"", "");
    let admins = journey.email("admins", "[\"admins@contoso.com\"]", "");
    journey.config("", &[owners.clone(), admins.clone()]);

    // 1. Default caps: everything is held back, visibly.
    let first = run(journey.scan()).await;
    let err = stderr(&first);
    assert_eq!(first.status.code(), Some(0), "{err}");
    assert!(
        err.contains("notifications held back on channel \"owners\"")
            && err.contains("over [state] max_new_findings = 500"),
        "{err}"
    );
    // The warning as docs/notifications.md shows it.
    let docs = std::fs::read_to_string(root().join("docs/notifications.md")).unwrap();
    let documented = docs
        .lines()
        .find_map(|line| line.strip_prefix("WARN notifications held back"))
        .expect("the documented warning");
    assert!(
        err.contains(&format!("notifications held back{documented}")),
        "{err}\n---\n{documented}"
    );
    let mail = by_recipient(&sink.messages());
    assert_eq!(
        mail.keys().collect::<Vec<_>>(),
        ["admins@contoso.com"],
        "no owner is mailed while held"
    );
    let note = &mail["admins@contoso.com"][0];
    let unfolded = note.replace("=\r\n", "").replace("\r\n", " ");
    assert!(
        unfolded.contains("held back")
            && unfolded.contains("channel \"owners\"")
            && unfolded.contains("inactive-groups (medium)")
            && unfolded.contains("high-external-members (high) 500"),
        "{unfolded}"
    );

    // 2. Unchanged and still held: the note is not repeated.
    let again = run(journey.scan()).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stderr(&again).contains("held back"));
    assert_eq!(sink.messages().len(), 1, "the same hold is noted once");

    // 3. Caps raised: every owner is mailed exactly once.
    let owners = journey.email("owners", "\"group-owners\"", "max_owner_messages = 5000");
    journey.config(
        "max_new_findings = 10000",
        &[owners.clone(), admins.clone()],
    );
    let raised = run(journey.scan()).await;
    assert_eq!(raised.status.code(), Some(0), "{}", stderr(&raised));
    let mail = by_recipient(&sink.messages());
    let owner_mail: Vec<_> = mail
        .iter()
        .filter(|(to, _)| to.starts_with("owner"))
        .collect();
    assert_eq!(owner_mail.len(), OWNERS, "every owner");
    assert!(
        owner_mail.iter().all(|(_, messages)| messages.len() == 1),
        "each exactly once"
    );
    assert_eq!(
        mail["admins@contoso.com"].len(),
        2,
        "the note, then the digest"
    );
    let sent = sink.messages().len();

    // 4. Unchanged rerun: silent.
    let silent = run(journey.scan()).await;
    assert_eq!(silent.status.code(), Some(0), "{}", stderr(&silent));
    assert_eq!(sink.messages().len(), sent, "nothing new to anyone");

    // 5. A channel added later: one backlog digest of what it routes.
    journey.config(
        "max_new_findings = 10000",
        &[owners.clone(), admins.clone(), journey.hook.clone()],
    );
    for _ in 0..3 {
        let scan = run(journey.scan()).await;
        assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    }
    assert_eq!(sink.messages().len(), sent, "the old channels hear nothing");
    let hooks = hook_bodies(&receiver).await;
    assert_eq!(hooks.len(), 1, "the backlog once: {hooks:?}");
    assert_eq!(hooks[0]["counts"]["new"], 500);
    assert_eq!(hooks[0]["findings"].as_array().unwrap().len(), 500);
    assert!(
        hooks[0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "high")
    );

    // The expiring exemption went to each admin channel once, over every
    // scan; the high channel never got zeros or an empty digest.
    let exemption_mail = mail["admins@contoso.com"]
        .iter()
        .filter(|m| m.contains("Kept for legal hold"))
        .count();
    assert_eq!(exemption_mail, 1, "the exemption notice once");
    for body in &hooks {
        assert!(counted(body) > 0, "{body}");
        assert!(
            !body["findings"].as_array().unwrap().is_empty()
                || !body["expiring_exemptions"].as_array().unwrap().is_empty(),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_gets_its_findings_when_it_recovers_and_the_mail_is_not_resent() {
    let sink = SmtpSink::start(0, None);
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let dir = TempDir::new().unwrap();
    let journey = Journey {
        dir,
        smtp_port: sink.port,
        hook: String::new(),
    };
    let rows: Vec<String> = (0..20)
        .map(|i| {
            Group {
                name: &format!("Group {i}"),
                owner: "",
                id: &format!("{i:08x}-0000-4000-8000-000000000000"),
                ..Default::default()
            }
            .csv()
        })
        .collect();
    write(journey.dir.path(), "r.csv", &report(&rows));
    let hook = format!(
        "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}/hook\"\nretries = 0\n",
        receiver.uri()
    );
    let mail = journey.email("mail", "[\"admins@contoso.com\"]", "");
    journey.config("", &[hook, mail]);

    let first = run(journey.scan()).await;
    assert_eq!(sink.messages().len(), 1, "{}", stderr(&first));
    let tried = hook_bodies(&receiver).await.len();
    assert_eq!(tried, 1, "the hook was tried");

    // Down still: the hook's message waits; nothing is queued twice and
    // the mail channel is not told again.
    let second = run(journey.scan()).await;
    let err = stderr(&second);
    assert_eq!(sink.messages().len(), 1, "{err}");
    let bodies = hook_bodies(&receiver).await;
    assert_eq!(bodies.len(), 2, "the one waiting message, tried again");
    assert_eq!(bodies[0]["delivery_id"], bodies[1]["delivery_id"]);

    // It recovers: `notify --retry` delivers the findings, once.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let mut retry = gw(journey.dir.path());
    retry.args(["notify", "--retry"]);
    let retried = run(retry).await;
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    let bodies = hook_bodies(&receiver).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["findings"].as_array().unwrap().len(), 20);
    assert_eq!(sink.messages().len(), 1, "the mail channel is not resent");

    // And from then on both are quiet.
    let third = run(journey.scan()).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(hook_bodies(&receiver).await.len(), 1);
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_retry_sends_what_a_raised_cap_now_allows_once() {
    let sink = SmtpSink::start(0, None);
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let journey = Journey {
        dir: TempDir::new().unwrap(),
        smtp_port: sink.port,
        hook: format!(
            "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}/hook\"\nretries = 0\n",
            receiver.uri()
        ),
    };
    let rows: Vec<String> = (0..5)
        .map(|i| {
            Group {
                name: &format!("Team {i}"),
                owner: "",
                id: &format!("{i:08x}-0000-4000-8000-000000000000"),
                ..Default::default()
            }
            .csv()
        })
        .collect();
    write(journey.dir.path(), "r.csv", &report(&rows));
    journey.config("max_new_findings = 2", std::slice::from_ref(&journey.hook));

    let held = run(journey.scan()).await;
    let err = stderr(&held);
    assert!(
        err.contains("notifications held back on channel \"hook\": 5 findings, over [state] max_new_findings = 2"),
        "{err}"
    );
    let notes = hook_bodies(&receiver).await;
    assert_eq!(notes.len(), 1, "the held note, alone");
    assert!(notes[0]["findings"].as_array().unwrap().is_empty());
    assert_eq!(
        notes[0]["counts"]["new"], 5,
        "the note counts what was held"
    );
    let reason = notes[0]["capped"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("channel \"hook\": 5 findings (more than [state] max_new_findings = 2)")
            && reason.contains("ownerless-groups (medium) 5"),
        "{reason}"
    );

    // The cap raised, no scan: `notify --retry` sends the held findings.
    journey.config("max_new_findings = 10", std::slice::from_ref(&journey.hook));
    let mut retry = gw(journey.dir.path());
    retry.args(["notify", "--retry"]);
    let retried = run(retry).await;
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    let bodies = hook_bodies(&receiver).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["findings"].as_array().unwrap().len(), 5);
    assert_eq!(bodies[1]["counts"]["new"], 5);

    // Once: neither another retry nor the next scan sends them again.
    let mut again = gw(journey.dir.path());
    again.args(["notify", "--retry"]);
    assert_eq!(run(again).await.status.code(), Some(0));
    let scan = run(journey.scan()).await;
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    // The scan tells the exemption expiring soon (held, and `--retry`
    // sends no notices), and nothing else.
    let bodies = hook_bodies(&receiver).await;
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(bodies[2]["findings"].as_array().unwrap().is_empty());
    assert_eq!(
        bodies[2]["expiring_exemptions"][0]["reason"],
        "Kept for legal hold"
    );
    assert_eq!(bodies[2]["counts"]["expiring_exemptions"], 1);
    let scan = run(journey.scan()).await;
    assert_eq!(scan.status.code(), Some(0), "{}", stderr(&scan));
    assert_eq!(hook_bodies(&receiver).await.len(), 3, "silent");
}
