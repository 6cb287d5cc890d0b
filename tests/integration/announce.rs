//! Scans announce what changed through the outbox: once, durably, and
//! again after a channel was down, with the same delivery id every time;
//! a message refused for good or out of runs becomes a dead letter. Real
//! binary, real SQLite file, a real HTTP receiver and SMTP server on
//! loopback.

use std::process::Output;
use std::time::Duration;

use crate::notify::{SmtpSink, header_value};
use crate::util::*;
use tempfile::TempDir;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn run(mut command: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

struct Tenant {
    dir: TempDir,
}

impl Tenant {
    fn new(receiver: &MockServer) -> Tenant {
        Tenant::with_hook(receiver, "retries = 0\n")
    }

    /// A webhook channel `hook` to `receiver`, with `options` added.
    fn with_hook(receiver: &MockServer, options: &str) -> Tenant {
        Tenant::with_channel(&format!(
            "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}/hook\"\ninclude_resolved = true\n{options}",
            receiver.uri()
        ))
    }

    /// An email channel `mail` to the SMTP server on `port`.
    fn with_mail(port: u16) -> Tenant {
        Tenant::with_channel(&format!(
            "[[notify]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"none\"\n\
             from = \"alerts@contoso.com\"\nto = [\"m365-admins@contoso.com\"]\nretries = 1\nretry_backoff_ms = 10\n"
        ))
    }

    fn with_channel(channel: &str) -> Tenant {
        let dir = TempDir::new().unwrap();
        write(
            dir.path(),
            "groupwarden.toml",
            &format!(
                "[rules]\ndir = \"{}\"\n\n[state]\npath = \"gw.db\"\n\n{channel}",
                bundled_rules().display(),
            ),
        );
        Tenant { dir }
    }

    fn notify(&self, args: &[&str]) -> assert_cmd::Command {
        let mut command = gw(self.dir.path());
        command.arg("notify").args(args);
        command
    }

    fn report(&self, rows: &[String]) {
        write(self.dir.path(), "r.csv", &report(rows));
    }

    fn scan(&self) -> assert_cmd::Command {
        let mut command = gw(self.dir.path());
        command.args(["scan", "--input", "r.csv", "--format", "jsonl"]);
        command
    }

    fn retry(&self) -> assert_cmd::Command {
        let mut command = gw(self.dir.path());
        command.args(["notify", "--retry"]);
        command
    }
}

fn ownerless(name: &str, id: &str) -> String {
    Group {
        name,
        id,
        owner: "",
        ..Default::default()
    }
    .csv()
}

async fn bodies(receiver: &MockServer) -> Vec<serde_json::Value> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_scan_announces_new_findings_once_and_then_what_was_resolved() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let tenant = Tenant::new(&receiver);
    tenant.report(&[ownerless("Alpha", "g-1"), ownerless("Beta", "g-2")]);

    let first = run(tenant.scan()).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("1 of 1 messages delivered"),
        "{}",
        stderr(&first)
    );
    let sent = bodies(&receiver).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["counts"]["new"], 2);
    let keys: Vec<&str> = sent[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["ownerless-groups:g-1", "ownerless-groups:g-2"]);

    // The same report again: nothing changed, nothing is sent.
    let second = run(tenant.scan()).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(
        bodies(&receiver).await.len(),
        1,
        "a second identical scan sends nothing"
    );

    // Beta got an owner: one resolved finding is announced.
    tenant.report(&[
        ownerless("Alpha", "g-1"),
        Group {
            name: "Beta",
            id: "g-2",
            ..Default::default()
        }
        .csv(),
    ]);
    let third = run(tenant.scan()).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    let sent = bodies(&receiver).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["counts"]["resolved"], 1);
    assert_eq!(sent[1]["counts"]["new"], 0);
}

#[tokio::test]
async fn a_channel_down_keeps_its_message_for_the_next_run_and_it_is_sent_once() {
    let receiver = MockServer::start().await;
    let down = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount_as_scoped(&receiver)
        .await;
    let tenant = Tenant::new(&receiver);
    tenant.report(&[ownerless("Alpha", "g-1")]);

    let failed = run(tenant.scan()).await;
    assert_eq!(
        failed.status.code(),
        Some(2),
        "a channel that fails makes the scan exit 2"
    );
    assert!(
        stderr(&failed).contains("1 of 1 messages were not delivered"),
        "{}",
        stderr(&failed)
    );
    // The findings were recorded all the same.
    assert!(
        stdout(&failed).contains("\"status\":\"new\""),
        "{}",
        stdout(&failed)
    );
    drop(down);

    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let retried = run(tenant.retry()).await;
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    let delivered: Vec<_> = bodies(&receiver)
        .await
        .into_iter()
        .filter(|b| b["counts"]["new"] == 1)
        .collect();
    // One refused attempt plus the delivery.
    assert_eq!(delivered.len(), 2);

    // Nothing is left: neither a retry nor the next scan sends it again.
    let again = run(tenant.retry()).await;
    assert!(
        stderr(&again).contains("has nothing waiting"),
        "{}",
        stderr(&again)
    );
    let next = run(tenant.scan()).await;
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert_eq!(bodies(&receiver).await.len(), 2);
}

async fn delivery_ids(receiver: &MockServer) -> Vec<String> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let header = r
                .headers
                .get("x-groupwarden-delivery")
                .expect("every request carries its delivery id")
                .to_str()
                .unwrap()
                .to_owned();
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(
                body["delivery_id"],
                header.as_str(),
                "the payload has it too"
            );
            header
        })
        .collect()
}

#[tokio::test]
async fn a_webhook_answering_after_the_timeout_gets_one_delivery_id_on_every_attempt_and_run() {
    let receiver = MockServer::start().await;
    let slow = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount_as_scoped(&receiver)
        .await;
    let tenant = Tenant::with_hook(
        &receiver,
        "retries = 1\nretry_backoff_ms = 10\ntimeout = \"300ms\"\nmax_runs = 2\n",
    );
    tenant.report(&[ownerless("Alpha", "g-1")]);

    let scan = run(tenant.scan()).await;
    assert_eq!(scan.status.code(), Some(2), "{}", stderr(&scan));
    let retry = run(tenant.retry()).await;
    assert_eq!(retry.status.code(), Some(2), "{}", stderr(&retry));
    assert!(
        stderr(&retry).contains("failed in 2 runs; it is now a dead letter"),
        "max_runs = 2: {}",
        stderr(&retry)
    );
    let ids = delivery_ids(&receiver).await;
    assert_eq!(ids.len(), 4, "two attempts in each of two runs");
    assert!(ids[0].starts_with("gw-1-"), "{ids:?}");
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");

    // A dead letter fails no later run; retried by id, it goes out with
    // the same id.
    let later = run(tenant.retry()).await;
    assert_eq!(later.status.code(), Some(0), "{}", stderr(&later));
    assert!(
        stderr(&later)
            .contains("1 messages dead-lettered; see `groupwarden notify --dead-letters`"),
        "{}",
        stderr(&later)
    );
    assert_eq!(delivery_ids(&receiver).await.len(), 4, "not tried again");
    drop(slow);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let revived = run(tenant.notify(&["--retry", &ids[0]])).await;
    assert_eq!(revived.status.code(), Some(0), "{}", stderr(&revived));
    let all = delivery_ids(&receiver).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[4], ids[0]);
    assert!(stderr(&run(tenant.notify(&["--dead-letters"])).await).contains("no dead letters"));
}

#[tokio::test]
async fn a_webhook_refusing_with_400_is_dead_lettered_at_once_and_later_scans_exit_0() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("bad payload"))
        .mount(&receiver)
        .await;
    let tenant = Tenant::with_hook(&receiver, "retries = 3\nretry_backoff_ms = 10\n");
    tenant.report(&[ownerless("Alpha", "g-1")]);

    let first = run(tenant.scan()).await;
    assert_eq!(first.status.code(), Some(2), "a new failure fails the scan");
    assert!(
        stderr(&first).contains("refused; it is now a dead letter"),
        "{}",
        stderr(&first)
    );
    assert_eq!(bodies(&receiver).await.len(), 1, "a 400 is not retried");

    tenant.report(&[ownerless("Alpha", "g-1"), ownerless("Beta", "g-2")]);
    let second = run(tenant.scan()).await;
    assert_eq!(
        second.status.code(),
        Some(2),
        "Beta's message is refused too: {}",
        stderr(&second)
    );
    assert_eq!(
        bodies(&receiver).await.len(),
        2,
        "the dead letter is not resent"
    );
    let third = run(tenant.scan()).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert!(
        stderr(&third)
            .contains("2 messages dead-lettered; see `groupwarden notify --dead-letters`"),
        "{}",
        stderr(&third)
    );
    assert_eq!(bodies(&receiver).await.len(), 2);

    let listed = run(tenant.notify(&["--dead-letters"])).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let list = stdout(&listed);
    assert!(list.contains("channel `hook`"), "{list}");
    assert!(list.contains("HTTP 400 Bad Request: bad payload"), "{list}");
    assert!(list.starts_with("1  gw-1-"), "{list}");
}

#[test]
fn an_email_refused_with_552_is_a_dead_letter_until_discarded() {
    let sink = SmtpSink::replying(
        "552 5.3.4 Message size exceeds fixed maximum message size",
        None,
    );
    let tenant = Tenant::with_mail(sink.port);
    tenant.report(&[ownerless("Alpha", "g-1")]);

    let first = tenant.scan().output().unwrap();
    assert_eq!(first.status.code(), Some(2), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("552") && stderr(&first).contains("now a dead letter"),
        "{}",
        stderr(&first)
    );
    assert_eq!(sink.messages().len(), 1, "a 5xx reply is not retried");

    let next = tenant.scan().output().unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert!(
        stderr(&next).contains("1 messages dead-lettered"),
        "{}",
        stderr(&next)
    );
    assert_eq!(sink.messages().len(), 1, "not resent by later scans");

    let listed = tenant.notify(&["--dead-letters"]).output().unwrap();
    assert!(
        stdout(&listed).contains("refused: permanent error (552): 5.3.4"),
        "{}",
        stdout(&listed)
    );
    let pending = tenant.notify(&["--discard", "2"]).output().unwrap();
    assert_eq!(pending.status.code(), Some(2), "no message 2");
    assert!(
        stderr(&pending).contains("outbox message 2: no such message"),
        "{}",
        stderr(&pending)
    );
    let discarded = tenant.notify(&["--discard", "1"]).output().unwrap();
    assert_eq!(discarded.status.code(), Some(0), "{}", stderr(&discarded));
    let empty = tenant.notify(&["--dead-letters"]).output().unwrap();
    assert!(
        stderr(&empty).contains("no dead letters"),
        "{}",
        stderr(&empty)
    );
    assert_eq!(stdout(&empty), "");
}

#[test]
fn an_emails_message_id_is_the_same_on_every_attempt_and_run() {
    let sink = SmtpSink::replying("451 4.3.0 Try again later", Some(3));
    let tenant = Tenant::with_mail(sink.port);
    tenant.report(&[ownerless("Alpha", "g-1")]);

    let scan = tenant.scan().output().unwrap();
    assert_eq!(scan.status.code(), Some(2), "{}", stderr(&scan));
    let retry = tenant.retry().output().unwrap();
    assert_eq!(retry.status.code(), Some(0), "{}", stderr(&retry));

    let messages = sink.messages();
    let replies: Vec<&str> = messages
        .iter()
        .map(|m| m["reply"].as_str().unwrap())
        .collect();
    assert_eq!(
        replies,
        [
            "451 4.3.0 Try again later",
            "451 4.3.0 Try again later",
            "451 4.3.0 Try again later",
            "250 OK"
        ]
    );
    let ids: Vec<String> = messages
        .iter()
        .map(|m| header_value(m["data"].as_str().unwrap(), "Message-ID"))
        .collect();
    assert!(
        ids[0].starts_with("<gw-1-") && ids[0].ends_with("@groupwarden>"),
        "{ids:?}"
    );
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
}

#[test]
fn validate_checks_channels_secrets_and_exemptions_without_sending() {
    let dir = TempDir::new().unwrap();
    let config = |reason: &str, secret_env: &str| {
        format!(
            "[rules]\ndir = \"{}\"\n\n[[exemptions]]\nrule = \"ownerless-groups\"\ngroup_id = \"g-1\"\n{reason}expires = \"2099-03-31\"\n\n\
             [[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret_env = \"{secret_env}\"\n",
            bundled_rules().display()
        )
    };
    let validate = |secret: Option<&str>| {
        let mut command = gw(dir.path());
        command.arg("validate").env_remove("GW_TEST_SECRET");
        if let Some(secret) = secret {
            command.env("GW_TEST_SECRET", secret);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };

    write(
        dir.path(),
        "groupwarden.toml",
        &config("reason = \"legal hold\"\n", "GW_TEST_SECRET"),
    );
    let (code, text) = validate(None);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("environment variable GW_TEST_SECRET (its `secret_env`) is not set"),
        "{text}"
    );

    let (code, text) = validate(Some("s3cret"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 exemptions (1 active"), "{text}");
    assert!(
        text.contains("1 channels; their templates render"),
        "{text}"
    );
    assert!(!text.contains("s3cret"));

    write(
        dir.path(),
        "groupwarden.toml",
        &config("", "GW_TEST_SECRET"),
    );
    let (code, text) = validate(Some("s3cret"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("missing field `reason`"),
        "an exemption without a reason is refused: {text}"
    );
}
