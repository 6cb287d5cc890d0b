//! Scans announce what changed through the outbox: once, durably, and
//! again after a channel was down. Real binary, real SQLite file, a real
//! HTTP receiver on loopback.

use std::process::Output;

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
        let dir = TempDir::new().unwrap();
        write(
            dir.path(),
            "groupwarden.toml",
            &format!(
                "[rules]\ndir = \"{}\"\n\n[state]\npath = \"gw.db\"\n\n[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}/hook\"\nretries = 0\ninclude_resolved = true\n",
                bundled_rules().display(),
                receiver.uri()
            ),
        );
        Tenant { dir }
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
