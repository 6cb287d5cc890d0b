//! One scan, start to finish: the report read, the rules run, findings
//! written and recorded, this scan's messages queued; then, as a second
//! step, the outbox delivered.
//!
//! ```text
//!  ScanPlan ──scan()──▶ ScanOutcome ──deliver()──▶ ScanOutcome + Deliveries
//!   (plain data)         summary, worst severity,      (what the channels
//!                        state changes (committed)      accepted)
//! ```
//!
//! The two steps are apart so a front end can show the scan's summary
//! before the (slower) delivery, and because the outbox is what makes
//! delivery safe to repeat: a scan whose delivery failed is still recorded.

use std::path::PathBuf;

use crate::config::LoadedConfig;
use crate::engine::eval::{RowOutcome, RuleFailure};
use crate::engine::finding::{Finding, Severity};
use crate::engine::rule::RuleSet;
use crate::notify::Channel;
use crate::notify::announce::{Deliveries, deliver_outbox, enqueue_changes};
use crate::output::file::{Output, open_output};
use crate::output::html::lifecycle::Lifecycle;
use crate::output::{FindingWriter, Format};
use crate::report::reader::ReportReader;
use crate::report::row::RowError;
use crate::scan::{ScanEvent, ScanOptions, ScanSummary, default_threads, scan as run_rows};
use crate::state::exemptions::ExemptionState;
use crate::state::recording::{RecordingPlan, ScanRecording};
use crate::state::{Changes, Status, Store};

use super::Error;
use super::input::{ReportInput, open_report};
use super::rules::load_rules;

/// Row errors and rule failures logged before the rest are only counted.
const ROW_ERRORS_SHOWN: u64 = 100;
const RULE_ERRORS_SHOWN_PER_RULE: u64 = 10;

/// Everything one scan needs, as plain data.
#[derive(Clone, Debug, Default)]
pub struct ScanPlan {
    /// The configuration file; `None`: `./groupwarden.toml` if present.
    pub config: Option<PathBuf>,
    /// The rules folder; `None`: `rules.dir` from the config, else `./rules`.
    pub rules_dir: Option<PathBuf>,
    /// The report to read.
    pub input: ReportInput,
    /// Where the findings go.
    pub output: OutputPlan,
    /// How the scan is recorded; `None` remembers nothing (`--no-state`).
    pub record: Option<RecordingPlan>,
    /// How rows are read and evaluated.
    pub tuning: Tuning,
    /// For a scan that is not recorded (`report`): the state database to
    /// read, never write, for the HTML page's statuses, first-seen days,
    /// resolved findings and exemptions. Missing is fine (no lifecycle).
    pub read_state: Option<RecordingPlan>,
    /// Record the scan in a transaction that is rolled back, and hand back
    /// the messages it would have queued ([`ScanOutcome::preview`]):
    /// `notify --dry-run`'s view of what the next scan would send.
    pub preview: bool,
    /// With `[[tenants]]` in the config: the tenant scanned (its source,
    /// rules, channels and its own state file; see `crate::tenants`).
    pub tenant: Option<String>,
}

/// Where a scan writes its findings.
#[derive(Clone, Debug, Default)]
pub struct OutputPlan {
    /// A file (written under a temporary name and renamed into place);
    /// `None`: standard output.
    pub path: Option<PathBuf>,
    /// `None`: by the file's extension, else table on a terminal, else jsonl.
    pub format: Option<Format>,
    /// Write the findings nowhere (a scheduled scan without an output
    /// file); they are still recorded and announced.
    pub discard: bool,
    /// CSV cells that start like a formula are written as they are, not
    /// neutralised with a leading `'` (for programs, not spreadsheets).
    pub raw_csv: bool,
}

/// How rows are read and evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Worker threads; `None`: all cores, up to eight.
    pub threads: Option<usize>,
    /// The first bad row stops the scan.
    pub strict: bool,
    /// Run compiled rules natively (see `engine::native`).
    pub fast_path: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            threads: None,
            strict: false,
            fast_path: true,
        }
    }
}

/// The `[scan]` section: when a scan that read the report only in part
/// counts as failed.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// The share of rows (0 to 1) that may fail to read before the scan
    /// fails: with more, nothing is recorded, resolved or announced and
    /// the scan exits 2. A scan where every row failed always fails.
    #[serde(default = "default_max_row_error_ratio", deserialize_with = "ratio")]
    pub max_row_error_ratio: f64,
    /// The longest record (in bytes) read from the report; a longer one,
    /// quoted or not, is a row error and reading goes on. Bounded to
    /// [`MAX_RECORD_BYTES_RANGE`].
    #[serde(
        default = "default_max_record_bytes",
        deserialize_with = "record_bytes"
    )]
    pub max_record_bytes: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            max_row_error_ratio: default_max_row_error_ratio(),
            max_record_bytes: default_max_record_bytes(),
        }
    }
}

/// The values `[scan] max_record_bytes` may take: a row is a few hundred
/// bytes, and the reader may hold about twice the cap.
pub const MAX_RECORD_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=64 << 20;

fn default_max_record_bytes() -> usize {
    crate::report::reader::MAX_RECORD_BYTES
}

fn record_bytes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = <i64 as serde::Deserialize>::deserialize(deserializer)?;
    match usize::try_from(value) {
        Ok(bytes) if MAX_RECORD_BYTES_RANGE.contains(&bytes) => Ok(bytes),
        _ => Err(serde::de::Error::custom(format!(
            "[scan] max_record_bytes must be a number of bytes from {} (1 KiB) to {} (64 MiB), found {value}",
            MAX_RECORD_BYTES_RANGE.start(),
            MAX_RECORD_BYTES_RANGE.end()
        ))),
    }
}

fn default_max_row_error_ratio() -> f64 {
    0.01
}

fn ratio<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = <f64 as serde::Deserialize>::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a share of rows from 0 to 1 (0.01 is 1%), found {value}"
        )))
    }
}

/// Why a scan that ran is still a failure.
#[derive(Debug, thiserror::Error)]
pub enum ScanFailure {
    /// Too many rows could not be read for the findings to be trusted.
    #[error(
        "{source_name}: {row_errors} of {rows} rows could not be read ({percent:.1}%){why}: the scan failed; nothing was recorded, resolved or announced (the first row errors are shown above)"
    )]
    TooManyRowErrors {
        /// The report.
        source_name: String,
        /// Rows that could not be read.
        row_errors: u64,
        /// Rows in all, bad ones included.
        rows: u64,
        /// `row_errors` as a percentage of `rows`.
        percent: f64,
        /// Which limit was passed.
        why: String,
    },
}

/// Fails a scan that read too little of the report to be trusted.
fn check_row_errors(summary: &ScanSummary, config: &ScanConfig) -> Result<(), ScanFailure> {
    let rows = summary.rows_read();
    let errors = summary.row_errors;
    if errors == 0 {
        return Ok(());
    }
    let share = errors as f64 / rows as f64;
    let why = if errors == rows {
        ", every row".to_owned()
    } else if share > config.max_row_error_ratio {
        format!(
            ", more than [scan] max_row_error_ratio = {} allows",
            config.max_row_error_ratio
        )
    } else {
        return Ok(());
    };
    Err(ScanFailure::TooManyRowErrors {
        source_name: summary.source.clone(),
        row_errors: errors,
        rows,
        percent: share * 100.0,
        why,
    })
}

/// What a scan did.
#[derive(Debug)]
pub struct ScanOutcome {
    /// Rows, errors and findings, in all and per rule.
    pub summary: ScanSummary,
    /// The highest severity among the findings that are not exempted.
    pub worst: Option<Severity>,
    /// The record of the scan, when it was recorded.
    pub recorded: Option<Recorded>,
    /// What delivering the outbox did, once [`ScanOutcome::deliver`] ran
    /// (`None` before, or with nothing to deliver to).
    pub deliveries: Option<Deliveries>,
    /// What delivery needs, kept until it runs.
    outbox: Option<Outbox>,
    /// With [`ScanPlan::preview`]: the messages this scan would queue
    /// (nothing of it was kept).
    pub preview: Option<Vec<crate::notify::Planned>>,
}

/// A recorded scan.
#[derive(Debug)]
pub struct Recorded {
    /// The state database.
    pub path: PathBuf,
    /// What the scan changed.
    pub changes: Changes,
}

/// The state database and channels a scan's messages wait in and go to.
struct Outbox {
    store: Store,
    channels: Vec<Channel>,
    loaded: LoadedConfig,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("store", &self.store.path())
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl ScanOutcome {
    /// Sends every message waiting in the outbox (this scan's and any an
    /// earlier run left), once. Failures are counted in
    /// [`ScanOutcome::deliveries`], not returned: the scan is recorded.
    pub fn deliver(&mut self) -> Result<Option<Deliveries>, Error> {
        if let Some(outbox) = self.outbox.take() {
            let deliveries = deliver_outbox(&outbox.store, &outbox.channels, &outbox.loaded)?;
            self.deliveries = Some(deliveries);
        }
        Ok(self.deliveries)
    }
}

/// Where the scan finds the directory cache: a recorded scan refreshes
/// it, `report` and a preview only read it, `--no-state` has none.
fn directory_cache(plan: &ScanPlan) -> super::directory::Cache<'_> {
    use super::directory::Cache;
    match (&plan.record, &plan.read_state) {
        (Some(record), _) if !plan.preview => Cache::ReadWrite(record.path.as_deref()),
        (Some(record), _) => Cache::ReadOnly(record.path.as_deref()),
        (None, Some(read)) => Cache::ReadOnly(read.path.as_deref()),
        (None, None) => Cache::None,
    }
}

/// Runs the scan `plan` describes: reads the report, runs the rules,
/// writes the findings, records the scan and queues its messages.
pub fn scan(plan: &ScanPlan) -> Result<ScanOutcome, Error> {
    let loaded = LoadedConfig::load(plan.config.as_deref())?;
    let (loaded, tenant_plan) = for_tenant(loaded, plan)?;
    let plan = tenant_plan.as_ref().unwrap_or(plan);
    let (engine, rules) = load_rules(plan.rules_dir.as_deref(), &loaded)?;
    // Channels are checked before anything is read: a broken template
    // must not surface only after the scan is recorded.
    let channels = crate::notify::validate(&loaded).map_err(crate::notify::NotifyError::from)?;
    if let Some(record) = plan.record.as_ref().filter(|_| !plan.preview) {
        // Before any download: a report fetched for nothing costs an API call.
        crate::state::recording::check_writable(record.path.as_deref(), &loaded)?;
    }
    // Before the report: its download should not wait on the directory's.
    let directory = super::directory::for_scan(&loaded, directory_cache(plan))?;
    let (input, source_name) = open_report(&plan.input, &loaded)?;
    let mut recording = ScanRecording::begin(
        plan.record.as_ref(),
        plan.preview,
        &loaded,
        &rules,
        &source_name,
    )?;
    let input = recording.check_report_start(input, &source_name)?;
    let output = match plan.output.discard {
        true => Output {
            out: Box::new(std::io::sink()),
            format: plan.output.format.unwrap_or(Format::Jsonl),
            file: None,
        },
        false => open_output(plan.output.path.as_deref(), plan.output.format)?,
    };
    let format = output.format;
    let page_path = output.file.as_ref().and(plan.output.path.as_deref());
    let max_record_bytes = loaded.config.scan.max_record_bytes;
    let (input, mut writer) = crate::output::scan_writer(
        format,
        output.out,
        page_path,
        input,
        &rules,
        plan.output.raw_csv,
        max_record_bytes,
    )?;
    if let Some(tenant) = &loaded.config.tenant {
        writer.set_tenant(tenant);
    }
    // `report`'s page shows the state as the last scan left it: handed
    // over before the findings, so the page counts their statuses as they
    // stream past instead of keeping them all.
    if format == Format::Html
        && plan.record.is_none()
        && let Some(read) = &plan.read_state
        && let Some(lifecycle) = existing_lifecycle(read, &loaded)?
    {
        writer.set_lifecycle(lifecycle);
    }
    let mut reader = ReportReader::with_max_record_bytes(input, &source_name, max_record_bytes)
        .map_err(crate::scan::ScanError::from)
        .inspect_err(|error| recording.fail(&error.to_string()))?;
    if let Some(directory) = &directory {
        reader.attach_directory(std::sync::Arc::clone(directory));
    }
    let options = ScanOptions {
        threads: plan.tuning.threads.unwrap_or_else(default_threads).max(1),
        strict: plan.tuning.strict,
        fast_path: plan.tuning.fast_path,
        // Resolving findings needs to know every group that was evaluated.
        track_groups: recording.is_recording(),
        // With statuses, a finding's line is only complete once the state
        // store has seen it: workers render it without, and this thread
        // adds the status.
        render: writer.render().filter(|_| !recording.is_recording()),
        prerender: writer.status_render().filter(|_| recording.is_recording()),
        // Tenant rules and the HTML page read the whole-report figures.
        full_stats: format == Format::Html || rules.enabled().any(|r| r.tenant_arity.is_some()),
    };

    // A write that fails (a full disk, a file size limit) names the output.
    let output_name = plan
        .output
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("standard output"));
    let out_err = |error: std::io::Error| Error::File {
        path: output_name.clone(),
        error,
    };
    let mut worst: Option<Severity> = None;
    let mut preview = None;
    let mut shown = ErrorDisplay::default();
    let mut names = NameKeys::default();
    let scanned = run_rows(reader, &engine, &rules, &options, &mut |event| {
        match event {
            ScanEvent::Row(outcome, lines) => {
                let renamed = names.distinct(outcome);
                let outcome = renamed.as_ref().unwrap_or(outcome);
                let statuses = recording.record_row(outcome)?;
                // Lines rendered by the workers are the row as it was, not
                // renamed.
                let lines = lines.filter(|_| renamed.is_none());
                write_row(&outcome.findings, statuses, lines, &mut *writer, &mut worst)
                    .map_err(out_err)?;
                for failure in &outcome.failures {
                    shown.rule_failure(failure);
                }
            }
            ScanEvent::RowError(error) => shown.row_error(&source_name, error),
            ScanEvent::Rendered {
                bytes,
                worst: rendered,
            } => {
                worst = worst.max(rendered);
                writer.write_rendered(bytes).map_err(out_err)?;
            }
        }
        Ok(())
    });
    let mut summary = scanned.inspect_err(|error| recording.fail(&error.to_string()))?;
    names.warn(&source_name);
    check_row_errors(&summary, &loaded.config.scan)
        .inspect_err(|error| recording.fail(&error.to_string()))?;
    warn_about_odd_dates_and_periods(&summary);
    if directory.is_some() {
        super::directory::warn_if_concealed(summary.stats.concealed, &source_name);
    }
    run_tenant_rules(
        &engine,
        &rules,
        &mut summary,
        &mut |finding| {
            worst = worst.max(Some(finding.severity));
            writer.write(finding)
        },
        &mut shown,
    )?;
    crate::engine::sandbox::report_hidden_output(&engine);
    let committed = match recording.finish(&summary)? {
        Some(pending) if plan.preview => {
            // Queued as a scan would, then dropped uncommitted: rolled
            // back, the database as it was.
            let queued =
                enqueue_changes(&pending, &channels, &summary, &loaded, directory.clone())?;
            preview = Some(queued.planned);
            drop(pending);
            None
        }
        Some(pending) => {
            pending.for_each_resolved(|stored| {
                writer
                    .write_with_status(&stored.to_finding(), Status::Resolved)
                    .map_err(out_err)
            })?;
            enqueue_changes(&pending, &channels, &summary, &loaded, directory.clone())?;
            Some(pending.commit()?)
        }
        None => None,
    };
    if format == Format::Html
        && let Some((store, _)) = &committed
    {
        writer.set_lifecycle(page_lifecycle(store, &loaded)?);
    }
    writer.finish(&summary).map_err(out_err)?;
    if let Some(file) = output.file {
        file.commit()?;
    }
    let (recorded, outbox) = match committed {
        Some((store, changes)) => {
            let recorded = Recorded {
                path: store.path().to_owned(),
                changes,
            };
            let outbox = (!channels.is_empty()).then(|| Outbox {
                store,
                channels,
                loaded,
            });
            (Some(recorded), outbox)
        }
        None => {
            // `report` (read_state) and previews announce nothing by design.
            if !channels.is_empty() && plan.record.is_none() && plan.read_state.is_none() {
                tracing::info!(
                    "--no-state: nothing is announced (notifications tell what changed since the last scan)"
                );
            }
            (None, None)
        }
    };
    Ok(ScanOutcome {
        summary,
        worst,
        recorded,
        deliveries: None,
        outbox,
        preview,
    })
}

/// The configuration of the plan's tenant, and the plan reading and
/// writing that tenant's state file (`--state` is a template then, see
/// [`crate::tenants::tenant_file`]); a config with `[[tenants]]` needs one.
fn for_tenant(
    loaded: LoadedConfig,
    plan: &ScanPlan,
) -> Result<(LoadedConfig, Option<ScanPlan>), Error> {
    let flag = plan
        .record
        .as_ref()
        .or(plan.read_state.as_ref())
        .and_then(|r| r.path.as_deref());
    let Some(name) = &plan.tenant else {
        crate::tenants::select(&loaded.config, &crate::tenants::Selection::default())
            .map_err(Error::Usage)?;
        return Ok((loaded, None));
    };
    let resolved = crate::tenants::resolve(&loaded, name, flag).map_err(Error::Usage)?;
    let mut plan = plan.clone();
    for state in [&mut plan.record, &mut plan.read_state]
        .into_iter()
        .flatten()
    {
        state.path = resolved.config.state.path.clone();
    }
    Ok((resolved, Some(plan)))
}

/// Keeps rows without a group id apart. Their findings are keyed by the
/// group's name, and names repeat (duplicate display names, blank names,
/// hashed names of a concealed report): the second and later rows with
/// the same name key as `name:<name>#2`, `#3`, … in report order, so two
/// groups never merge into one finding in state.
#[derive(Default)]
struct NameKeys {
    /// How often each name key has been seen.
    seen: std::collections::HashMap<String, u64>,
    /// Rows that got a numbered key.
    renamed: u64,
}

impl NameKeys {
    /// `outcome` with numbered keys if its name key was seen before.
    fn distinct(&mut self, outcome: &RowOutcome) -> Option<RowOutcome> {
        if !outcome.group_key.starts_with("name:") {
            return None;
        }
        let count = self.seen.entry(outcome.group_key.clone()).or_default();
        *count += 1;
        if *count == 1 {
            return None;
        }
        self.renamed += 1;
        let group_key = format!("{}#{count}", outcome.group_key);
        let mut renamed = outcome.clone();
        for finding in &mut renamed.findings {
            let old = format!("{}:{}", finding.rule, outcome.group_key);
            if let Some(rest) = finding.key.strip_prefix(&old) {
                finding.key = format!("{}:{group_key}{rest}", finding.rule);
            }
        }
        renamed.group_key = group_key;
        renamed.group_hash = None;
        renamed.key_hashes.clear();
        renamed.content_hashers.clear();
        Some(renamed)
    }

    /// One warning for the report, with the count.
    fn warn(&self, source_name: &str) {
        if self.renamed > 0 {
            tracing::warn!(
                rows = self.renamed,
                "{source_name}: {} rows without a group id share a name with an earlier row; \
                 their findings are keyed name#2, name#3, … in report order so the groups stay apart \
                 (a report with Group Id keys findings by id)",
                self.renamed
            );
        }
    }
}

/// The state of an existing database for a report that records
/// nothing; `None` when there is no database yet.
fn existing_lifecycle(
    read: &RecordingPlan,
    loaded: &LoadedConfig,
) -> Result<Option<Lifecycle>, Error> {
    use crate::state::recording::{state_path, store_options};
    let path = state_path(read.path.as_deref(), loaded);
    match Store::open_read_only(&path, &store_options(loaded, false)) {
        Ok(store) => Ok(Some(page_lifecycle(&store, loaded)?)),
        Err(crate::state::StateError::Missing { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// What the HTML page shows of the state: each finding's status and
/// first-seen day, what the latest scan resolved, the exemptions in force.
fn page_lifecycle(store: &Store, loaded: &LoadedConfig) -> Result<Lifecycle, Error> {
    use crate::output::html::lifecycle::{Exemption, FindingLifecycle, ResolvedFinding};
    let view = store.lifecycle_view()?;
    let findings = view
        .findings
        .iter()
        .map(|f| {
            let lifecycle = FindingLifecycle {
                status: f.status,
                first_seen: f.first_seen_day(),
            };
            (f.key.clone(), lifecycle)
        })
        .collect();
    let resolved = view
        .resolved_last_scan
        .iter()
        .map(|f| ResolvedFinding {
            rule: f.rule.clone(),
            key: f.key.clone(),
            group_name: f.group_name.clone(),
            first_seen: f.first_seen_day(),
        })
        .collect();
    let today = crate::state::recording::today();
    let exemptions = crate::state::recording::all_exemptions(loaded, store)?;
    let in_force = [ExemptionState::Active, ExemptionState::Expiring]
        .into_iter()
        .flat_map(|state| exemptions.in_state(today, state))
        .map(|e| Exemption {
            rule: (e.rule != "*").then(|| e.rule.clone()),
            group: e.group.to_string(),
            reason: Some(e.reason.clone()),
            granted_by: e.approved_by.clone(),
            expires: Some(e.expires),
        })
        .collect();
    let trend = store
        .trend(&Default::default())?
        .into_iter()
        .filter_map(|scan| {
            Some(crate::output::html::trend::TrendPoint {
                scan_id: scan.scan_id,
                label: scan
                    .report_refresh_date
                    .unwrap_or_else(|| scan.finished_at.chars().take(10).collect()),
                counts: scan.counts?,
            })
        })
        .collect();
    Ok(Lifecycle {
        findings,
        resolved,
        exemptions: in_force,
        trend,
    })
}

/// A daily report, rows refreshed on another date than most (a file that
/// mixes reports, an edited row) and periods Graph does not serve are
/// accepted, but said.
fn warn_about_odd_dates_and_periods(summary: &ScanSummary) {
    let outliers = summary.stats.refresh_date_outliers();
    if outliers > 0 {
        tracing::warn!(
            rows = outliers,
            "{}: {outliers} rows carry another refresh date than the report's {} (the date most rows carry, which the state keeps): \
             does the file mix two reports?",
            summary.source,
            summary.stats.refresh_date().unwrap_or_default()
        );
    }
    if summary.stats.period == Some(1) {
        tracing::warn!(
            "{} is a daily report (Report Period 1): its Last Activity Date is blank for most groups, \
             so it cannot tell which groups are inactive (the bundled inactive-groups rule skips it). \
             Scan a period report (D7, D30, D90, D180) for inactivity",
            summary.source
        );
    }
    if let Some(period) = summary.stats.period
        && ![1, 7, 30, 90, 180].contains(&period)
    {
        tracing::warn!(
            "{}: Report Period {period} is not one Graph serves (7, 30, 90, 180, or 1 for a daily report): is this the groups activity report?",
            summary.source
        );
    }
}

/// Writes a row's findings, with their statuses in a recorded scan:
/// where the workers rendered them (`lines`, one line each, in order),
/// each line with its status added. Exempted findings do not count
/// towards the worst severity.
fn write_row(
    findings: &[Finding],
    statuses: Option<&[Status]>,
    lines: Option<&[u8]>,
    writer: &mut dyn FindingWriter,
    worst: &mut Option<Severity>,
) -> std::io::Result<()> {
    match statuses {
        None => {
            for finding in findings {
                *worst = (*worst).max(Some(finding.severity));
                writer.write(finding)?;
            }
        }
        Some(statuses) => {
            // Each line ends at its newline, found with memchr (a byte
            // at a time, finding them was 3% of a first stateful scan's
            // ordering thread).
            let mut lines = lines.map(|lines| {
                let mut start = 0;
                memchr::memchr_iter(b'\n', lines).map(move |end| {
                    let line = &lines[start..=end];
                    start = end + 1;
                    line
                })
            });
            for (finding, &status) in findings.iter().zip(statuses) {
                if status != Status::Exempted {
                    *worst = (*worst).max(Some(finding.severity));
                }
                match lines.as_mut().and_then(Iterator::next) {
                    Some(line) => writer.write_rendered_with_status(line, status)?,
                    None => writer.write_with_status(finding, status)?,
                }
            }
        }
    }
    Ok(())
}

/// Runs the tenant rules over the whole-report figures, after the last
/// row; their findings go to the same writer and count in the summary.
fn run_tenant_rules(
    engine: &rhai::Engine,
    rules: &RuleSet,
    summary: &mut ScanSummary,
    write: &mut dyn FnMut(&Finding) -> std::io::Result<()>,
    shown: &mut ErrorDisplay,
) -> Result<(), Error> {
    let tenant_summary =
        crate::engine::tenant::Summary::new(summary.stats.clone(), summary.row_errors);
    let outcome = crate::engine::tenant::evaluate(engine, rules.enabled(), &tenant_summary);
    for finding in &outcome.findings {
        write(finding)?;
        summary.findings += 1;
        if let Some((_, counts)) = summary
            .per_rule
            .iter_mut()
            .find(|(id, _)| *id == finding.rule)
        {
            counts.findings += 1;
        }
    }
    for failure in &outcome.failures {
        shown.rule_failure(failure);
        summary.rule_errors += 1;
        if let Some((_, counts)) = summary
            .per_rule
            .iter_mut()
            .find(|(id, _)| *id == failure.rule)
        {
            counts.errors += 1;
        }
    }
    Ok(())
}

/// Logs the first errors in full and counts the rest, so a broken
/// report cannot flood the log.
#[derive(Default)]
struct ErrorDisplay {
    row_errors: u64,
    rule_errors: std::collections::HashMap<std::sync::Arc<str>, u64>,
    /// Rules already reported as disabled for the rest of the scan.
    disabled: std::collections::HashSet<std::sync::Arc<str>>,
}

impl ErrorDisplay {
    fn row_error(&mut self, source: &str, error: &RowError) {
        self.row_errors += 1;
        if self.row_errors <= ROW_ERRORS_SHOWN {
            tracing::warn!("{source}, {error}; row skipped");
        } else if self.row_errors == ROW_ERRORS_SHOWN + 1 {
            tracing::warn!("{source}: more row errors; only their count is shown in the summary");
        }
    }

    fn rule_failure(&mut self, failure: &RuleFailure) {
        if failure.is_disabled_rule() {
            // Once per rule, whatever the count.
            if self.disabled.insert(failure.rule.clone()) {
                tracing::warn!(
                    "rule `{}` was disabled after too many rows in a row over its limits; \
                     its findings for the rest of the report are missing (each row it skipped \
                     counts as a rule error, and none of its findings is resolved): {}",
                    failure.rule,
                    failure.diagnostic.short()
                );
            }
            return;
        }
        let count = self.rule_errors.entry(failure.rule.clone()).or_default();
        *count += 1;
        if *count <= RULE_ERRORS_SHOWN_PER_RULE {
            tracing::warn!("{failure}");
        } else if *count == RULE_ERRORS_SHOWN_PER_RULE + 1 {
            tracing::warn!(
                "rule `{}` failed on more rows; only the count is shown in the summary",
                failure.rule
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rows: u64, row_errors: u64) -> ScanSummary {
        let mut summary = ScanSummary {
            source: "report.csv".into(),
            row_errors,
            ..ScanSummary::default()
        };
        summary.stats.rows = rows - row_errors;
        summary
    }

    #[test]
    fn a_scan_fails_past_the_share_of_bad_rows_or_when_every_row_is_bad() {
        let config = ScanConfig::default();
        assert!(check_row_errors(&summary(1000, 10), &config).is_ok());
        let error = check_row_errors(&summary(1000, 11), &config).unwrap_err();
        assert!(error.to_string().contains("11 of 1000 rows could not be read (1.1%), more than [scan] max_row_error_ratio = 0.01 allows"), "{error}");
        let lenient = ScanConfig {
            max_row_error_ratio: 1.0,
            ..ScanConfig::default()
        };
        assert!(check_row_errors(&summary(10, 9), &lenient).is_ok());
        let error = check_row_errors(&summary(10, 10), &lenient).unwrap_err();
        assert!(error.to_string().contains("(100.0%), every row"), "{error}");
        assert!(check_row_errors(&summary(0, 0), &config).is_ok());
    }

    #[test]
    fn the_ratio_is_a_share_from_0_to_1() {
        let parse = |text: &str| crate::config::parse(text).map(|c| c.scan);
        assert_eq!(
            parse("[scan]\nmax_row_error_ratio = 0.05\n")
                .unwrap()
                .max_row_error_ratio,
            0.05
        );
        let error = parse("[scan]\nmax_row_error_ratio = 5\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("from 0 to 1"), "{error}");
    }

    #[test]
    fn the_record_cap_is_bounded_and_errors_name_the_key() {
        let parse = |text: &str| crate::config::parse(text).map(|c| c.scan);
        assert_eq!(
            parse("").unwrap().max_record_bytes,
            crate::report::reader::MAX_RECORD_BYTES
        );
        assert_eq!(
            parse("[scan]\nmax_record_bytes = 4096\n")
                .unwrap()
                .max_record_bytes,
            4096
        );
        for bad in ["0", "-5", "100", "1073741824"] {
            let error = parse(&format!("[scan]\nmax_record_bytes = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("[scan] max_record_bytes must be a number of bytes from 1024"),
                "{error}"
            );
            assert!(error.contains(&format!("found {bad}")), "{error}");
        }
        let error = parse("[scan]\nmax_record_bytes = \"1 MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("max_record_bytes"), "{error}");
    }
}
