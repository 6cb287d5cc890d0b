//! `groupwarden notify`: send a test message through a channel, or route
//! and send a digest (from a file, or from a scan that treats every
//! finding as new), or with `--dry-run` only show what would be sent.
//!
//! The scan-time path (state store → outbox → delivery) calls the same
//! [`crate::notify`] functions; this command is how an admin tries a
//! channel or previews the messages before trusting a schedule with them,
//! and how they settle the outbox: `--retry` sends what waits,
//! `--dead-letters` lists the messages no run tries any more, `--retry ID`
//! and `--discard ID` send one again or drop it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use crate::cli::NotifyArgs;
use crate::config::LoadedConfig;
use crate::engine::rule::RuleText;
use crate::notify::announce::{deliver_outbox, enqueue_owed_now};
use crate::notify::render::{EmailContent, Rendered};
use crate::notify::{
    Channel, Counts, Digest, DigestItem, ItemStatus, NotifyError, Planned, ScanInfo, plan, render,
    validate,
};
use crate::report::reader::ReportReader;
use crate::scan::{ScanEvent, ScanOptions, scan};
use crate::state::Store;
use crate::state::outbox::{self, MessageState, OutboxMessage};

use super::{Error, Outcome, load_rules, open_input};

/// Runs `groupwarden notify`.
pub(crate) fn run(mut args: NotifyArgs) -> Result<Outcome, Error> {
    let outbox_action = args.retry.is_some() || args.dead_letters || args.discard.is_some();
    if args.state.is_some() && !outbox_action {
        return Err(Error::Usage(
            "--state goes with --retry, --dead-letters or --discard".into(),
        ));
    }
    let loaded = LoadedConfig::load(args.config.as_deref())?;
    let loaded = match args.tenant.as_deref() {
        Some(name) => {
            let resolved = crate::tenants::resolve(&loaded, name, args.state.as_deref())
                .map_err(Error::Usage)?;
            // The tenant's state file is in its configuration now.
            args.state = None;
            resolved
        }
        None => loaded,
    };
    // Listing and discarding need no channel: a broken `[[notify]]` must
    // not stop an admin from looking at the outbox.
    if args.dead_letters {
        return list_dead_letters(&args, &loaded);
    }
    if let Some(key) = &args.discard {
        return discard(&args, key, &loaded);
    }
    let channels = selected(
        validate(&loaded).map_err(NotifyError::from)?,
        &args.channels,
    )?;
    if let Some(revive) = &args.retry {
        return retry_outbox(&args, revive.as_deref(), &channels, &loaded);
    }
    let planned = match (&args.test, &args.digest, &args.input) {
        (Some(name), _, _) => vec![test_message(&channels, name)?],
        (None, Some(path), _) => plan(&channels, &read_digest(path)?),
        (None, None, Some(report)) if args.dry_run && has_state(&args, &loaded) => {
            preview_next_scan(&args, report)?
                .into_iter()
                .filter(|planned| channels.iter().any(|c| c.name() == planned.channel))
                .collect()
        }
        (None, None, Some(report)) => plan(
            &channels,
            &digest_of_scan(report, args.rules.as_deref(), &loaded)?,
        ),
        (None, None, None) => {
            return Err(Error::Usage(
                "give --test CHANNEL, --digest FILE or --input REPORT".into(),
            ));
        }
    };
    if args.dry_run {
        show(&channels, &planned, args.out.as_deref())?;
        return Ok(Outcome::Clean);
    }
    send(&channels, &planned, &loaded)
}

/// `notify --retry [ID]`: what earlier scans queued and could not
/// deliver, what the caps held back and now allow, and dead letter `ID`
/// made pending again first.
fn retry_outbox(
    args: &NotifyArgs,
    revive: Option<&str>,
    channels: &[Channel],
    loaded: &LoadedConfig,
) -> Result<Outcome, Error> {
    let store = crate::state::recording::open_existing(args.state.as_deref(), loaded)?;
    if let Some(key) = revive {
        let message = dead_letter(&store, key)?;
        outbox::revive(store.connection(), message.id).map_err(|e| store.fail(e))?;
        super::say!(
            "message {} ({}) is pending again",
            message.id,
            message.delivery_id
        );
    }
    // What the caps held back and now allow (or a channel added since
    // the last scan is owed) goes out with what waits.
    let queued = enqueue_owed_now(&store, channels, loaded, &rule_texts(loaded))?;
    if !queued.planned.is_empty() {
        super::say!(
            "queued {} messages the last scan held back or a channel is owed",
            queued.planned.len()
        );
    }
    for held in &queued.held {
        super::say!(
            "channel \"{}\" is still held back: {} findings, over {} = {}",
            held.channel,
            held.owed.total(),
            held.cap,
            held.limit
        );
    }
    let deliveries = deliver_outbox(&store, channels, loaded)?;
    if deliveries.total() == 0 {
        super::say!(
            "the outbox of {} has nothing waiting",
            store.path().display()
        );
    }
    deliveries.into_result()?;
    Ok(Outcome::Clean)
}

/// `notify --dead-letters`: each dead letter, what it was and why it
/// stopped, on standard output.
fn list_dead_letters(args: &NotifyArgs, loaded: &LoadedConfig) -> Result<Outcome, Error> {
    let store = super::open_read_only(args.state.as_deref(), loaded)?;
    let dead = outbox::dead_letters(store.connection()).map_err(|e| store.fail(e))?;
    if dead.is_empty() {
        super::say!(
            "the outbox of {} has no dead letters",
            store.path().display()
        );
        return Ok(Outcome::Clean);
    }
    let mut stdout = std::io::stdout().lock();
    for message in &dead {
        write!(stdout, "{}", describe_dead_letter(message))?;
    }
    super::say!(
        "{} dead letters; `groupwarden notify --retry ID` sends one again, `--discard ID` drops it",
        dead.len()
    );
    Ok(Outcome::Clean)
}

fn describe_dead_letter(message: &OutboxMessage) -> String {
    let plural = |n: u32, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}  {}  channel `{}` to {}\n    queued {}, dead since {}, {} in {}: {}\n",
        message.id,
        message.delivery_id,
        printable(&message.channel),
        printable(&message.recipient),
        message.created_at,
        message.dead_at.as_deref().unwrap_or("?"),
        plural(message.attempts, "attempt"),
        plural(message.runs, "run"),
        printable(message.last_error.as_deref().unwrap_or("no error recorded")),
    )
}

/// `text` with control characters escaped: an error may quote a server's
/// answer, which must not drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `notify --discard ID`: drops a dead letter for good.
fn discard(args: &NotifyArgs, key: &str, loaded: &LoadedConfig) -> Result<Outcome, Error> {
    let store = crate::state::recording::open_existing(args.state.as_deref(), loaded)?;
    let message = dead_letter(&store, key)?;
    outbox::discard(store.connection(), message.id).map_err(|e| store.fail(e))?;
    super::say!(
        "discarded message {} ({}) for channel `{}`",
        message.id,
        message.delivery_id,
        printable(&message.channel)
    );
    Ok(Outcome::Clean)
}

/// The dead letter `key` (a number or delivery id) names.
fn dead_letter(store: &Store, key: &str) -> Result<OutboxMessage, Error> {
    let message = outbox::find(store.connection(), key).map_err(|e| store.fail(e))?;
    let problem = match message.as_ref().map(OutboxMessage::state) {
        Some(MessageState::DeadLetter) => return Ok(message.expect("found")),
        Some(MessageState::Delivered) => "delivered already",
        Some(MessageState::Pending) => "still pending, not a dead letter (`--retry` sends it)",
        None => "no such message (`--dead-letters` lists them)",
    };
    Err(NotifyError::NotADeadLetter {
        key: key.to_owned(),
        problem,
    }
    .into())
}

fn send(
    channels: &[Channel],
    planned: &[Planned],
    loaded: &LoadedConfig,
) -> Result<Outcome, Error> {
    if planned.is_empty() {
        super::say!("nothing to send");
        return Ok(Outcome::Clean);
    }
    let report = crate::notify::announce::send_now(channels, planned, loaded)?;
    super::say!(
        "{} of {} messages delivered",
        report.delivered(),
        planned.len()
    );
    let failed = report.failures().count();
    if failed > 0 {
        return Err(NotifyError::Undelivered {
            failed,
            total: planned.len(),
        }
        .into());
    }
    Ok(Outcome::Clean)
}

/// The channels named by `--channel`, or all.
fn selected(channels: Vec<Channel>, names: &[String]) -> Result<Vec<Channel>, NotifyError> {
    for name in names {
        find(&channels, name)?;
    }
    Ok(channels
        .into_iter()
        .filter(|c| names.is_empty() || names.iter().any(|n| n == c.name()))
        .collect())
}

fn find<'a>(channels: &'a [Channel], name: &str) -> Result<&'a Channel, NotifyError> {
    channels
        .iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| NotifyError::UnknownChannel {
            name: name.to_owned(),
            known: if channels.is_empty() {
                "none configured".to_owned()
            } else {
                channels
                    .iter()
                    .map(Channel::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// The sample digest, marked as a test, to the channel's own recipients;
/// routing is bypassed so the test reaches them whatever the filters say.
fn test_message(channels: &[Channel], name: &str) -> Result<Planned, NotifyError> {
    let channel = find(channels, name)?;
    let recipient = channel
        .test_recipient()
        .ok_or_else(|| NotifyError::NoTestRecipient(name.to_owned()))?;
    let mut digest = crate::notify::sample::sample_digest(true);
    digest.scan.scanned_at = now();
    Ok(Planned {
        channel: name.to_owned(),
        recipient,
        digest,
        delivery_id: None,
    })
}

fn read_digest(path: &Path) -> Result<Digest, Error> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::File {
        path: path.to_owned(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        NotifyError::Digest {
            path: path.to_owned(),
            message: e.to_string(),
        }
        .into()
    })
}

/// A state database to compare with exists.
fn has_state(args: &NotifyArgs, loaded: &LoadedConfig) -> bool {
    crate::state::recording::state_path(args.state.as_deref(), loaded).is_file()
}

/// `notify --dry-run --input REPORT` with a state database: the scan of
/// `REPORT` recorded in a transaction that is rolled back, so the
/// messages are exactly those the next scan would queue (new, reopened,
/// reminders, resolved, exemptions and caps applied), and the database
/// is left as it was.
fn preview_next_scan(args: &NotifyArgs, report: &Path) -> Result<Vec<Planned>, Error> {
    let plan = crate::pipeline::ScanPlan {
        config: args.config.clone(),
        rules_dir: args.rules.clone(),
        input: crate::pipeline::input::ReportInput {
            path: Some(report.to_owned()),
            ..Default::default()
        },
        output: crate::pipeline::OutputPlan {
            discard: true,
            ..Default::default()
        },
        record: Some(crate::state::recording::RecordingPlan {
            path: args.state.clone(),
            allow_older: false,
        }),
        tuning: Default::default(),
        read_state: None,
        preview: true,
        tenant: args.tenant.clone(),
    };
    let outcome = crate::pipeline::scan(&plan)?;
    Ok(outcome.preview.unwrap_or_default())
}

/// Scans `report` and makes every finding new: the digest a first run,
/// with an empty state, would announce.
fn digest_of_scan(
    report: &Path,
    rules_dir: Option<&Path>,
    loaded: &LoadedConfig,
) -> Result<Digest, Error> {
    let (engine, rules) = load_rules(rules_dir, loaded)?;
    let (input, source_name) = open_input(report, Default::default())?;
    let cap = loaded.config.scan.max_record_bytes;
    let reader = ReportReader::with_max_record_bytes(input, &source_name, cap)
        .map_err(crate::scan::ScanError::from)?;
    let options = ScanOptions {
        track_groups: false,
        ..ScanOptions::default()
    };
    let mut findings = Vec::new();
    let summary = scan(reader, &engine, &rules, &options, &mut |event| {
        match event {
            ScanEvent::Row(outcome, _) => findings.extend(outcome.findings.iter().cloned()),
            ScanEvent::RowError(error) => tracing::warn!("{source_name}, {error}; row skipped"),
            // Not asked for: `options.render` is None.
            ScanEvent::Rendered { .. } => {}
        }
        Ok(())
    })?;
    let refresh = summary
        .stats
        .refresh_date()
        .and_then(|d| d.parse::<jiff::civil::Date>().ok());
    let items: Vec<DigestItem> = findings
        .iter()
        .map(|f| DigestItem::from_finding(ItemStatus::New, f, refresh))
        .collect();
    let mut digest = Digest {
        scan: ScanInfo {
            tenant: None,
            source: report
                .file_name()
                .map_or(source_name.clone(), |n| n.to_string_lossy().into_owned()),
            report_refresh_date: refresh,
            report_period: summary.stats.period,
            scanned_at: now(),
            rows: summary.rows_read(),
        },
        counts: Counts::of_items(&items),
        items,
        expiring_exemptions: Vec::new(),
        capped: None,
        test: false,
        rules: Default::default(),
    };
    digest.describe_rules(&summary.rule_texts);
    digest.sort();
    Ok(digest)
}

/// Every rule's title and help, for messages queued outside a scan. The
/// rules are read only to name them: when they cannot be read, messages
/// name rules by id, which is no reason to hold them back.
fn rule_texts(loaded: &LoadedConfig) -> BTreeMap<String, RuleText> {
    match load_rules(None, loaded) {
        Ok((_, rules)) => rules
            .enabled()
            .map(|r| (r.id.to_string(), r.text()))
            .collect(),
        Err(error) => {
            tracing::debug!("rules not read, messages name rules by id: {error}");
            BTreeMap::new()
        }
    }
}

/// `--dry-run`: every message as it would be sent, to standard output or
/// one file per part in `out`.
fn show(channels: &[Channel], planned: &[Planned], out: Option<&Path>) -> Result<(), Error> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|error| Error::File {
            path: dir.to_owned(),
            error,
        })?;
    }
    let mut stdout = std::io::stdout().lock();
    for (index, message) in planned.iter().enumerate() {
        let channel = find(channels, &message.channel)?;
        let rendered = render(channel, message)
            .map_err(|e| NotifyError::Setup(format!("channel `{}`: {e}", channel.name())))?;
        match out {
            Some(dir) => write_files(dir, index + 1, message, &rendered)?,
            None => write!(
                stdout,
                "{}",
                describe(index + 1, planned.len(), channel, message, &rendered)
            )?,
        }
    }
    super::say!("{} messages rendered, none sent (dry run)", planned.len());
    Ok(())
}

fn describe(
    number: usize,
    total: usize,
    channel: &Channel,
    message: &Planned,
    rendered: &Rendered,
) -> String {
    let kind = channel.config().kind.as_str();
    let mut text = format!(
        "==> message {number} of {total}: channel `{}` ({kind}) to {}\n",
        message.channel, message.recipient
    );
    match rendered {
        Rendered::Email(EmailContent {
            subject,
            text: plain,
            html,
            attachments,
            ..
        }) => {
            let _ = write!(
                text,
                "Subject: {subject}\n\n{plain}\n--- text/html ---\n{html}\n"
            );
            for file in attachments {
                let _ = writeln!(
                    text,
                    "--- attachment {} ({}, {} bytes) ---",
                    file.filename,
                    file.content_type,
                    file.content.len()
                );
            }
        }
        Rendered::Webhook(webhook) => {
            let _ = writeln!(text, "{}", webhook.body.trim_end());
        }
    }
    text
}

fn write_files(
    dir: &Path,
    number: usize,
    message: &Planned,
    rendered: &Rendered,
) -> Result<(), Error> {
    let stem = format!(
        "{number:03}-{}-{}",
        slug(&message.channel),
        slug(&message.recipient)
    );
    let files: Vec<(String, Vec<u8>)> = match rendered {
        Rendered::Email(content) => {
            let mut files = vec![
                (
                    format!("{stem}.txt"),
                    format!(
                        "To: {}\nSubject: {}\n\n{}",
                        message.recipient, content.subject, content.text
                    )
                    .into_bytes(),
                ),
                (format!("{stem}.html"), content.html.clone().into_bytes()),
            ];
            files.extend(content.attachments.iter().map(|file| {
                (
                    format!("{stem}-{}", slug(&file.filename)),
                    file.content.clone(),
                )
            }));
            files
        }
        Rendered::Webhook(webhook) => {
            vec![(format!("{stem}.json"), webhook.body.clone().into_bytes())]
        }
    };
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|error| Error::File {
            path: path.clone(),
            error,
        })?;
        super::say!("wrote {}", path.display());
    }
    Ok(())
}

/// A file-name-safe form of a channel name or recipient.
fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    slug.trim_matches('_').to_owned()
}

/// Now, to the second: messages need no nanoseconds.
fn now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}
