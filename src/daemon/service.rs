//! The daemon's loop: wait for the next due time, a finished scan or a
//! signal, and act on whichever comes first.
//!
//! One scan at a time: a time that comes while a scan runs is skipped
//! and logged. A failed scan is logged and tried again at the next time
//! (or `retry_after` after it failed, if that comes first). SIGHUP pins a
//! new generation of config and rules, or keeps the running one if the new
//! one does not pass the checks. SIGTERM and SIGINT stop new scans and
//! wait up to `grace_period` for the running one; a second signal stops
//! the wait.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;

use super::DaemonError;
use super::job::{FinishedScan, ScanJob, Trigger};
use super::pinned::{Pinned, pin};
use super::schedule::{Schedule, Tick};
use super::status::Status;

/// The longest single sleep: waking now and then notices a wall clock
/// that was set or a machine that was suspended.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs the daemon for the config file at `config_path` until a signal
/// stops it.
pub(crate) fn run(config_path: &Path) -> Result<(), DaemonError> {
    let workspace = tempfile::Builder::new()
        .prefix("groupwarden-run-")
        .tempdir()
        .map_err(|e| DaemonError::Setup(format!("cannot create a private folder: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // Before the checks, which take a while: an early SIGHUP or SIGTERM
        // must not kill the process with the default action.
        let signals = Signals::new()?;
        let pinned = pin(config_path, &workspace.path().join("1")).map_err(|problems| {
            DaemonError::Invalid {
                path: config_path.to_owned(),
                problems,
            }
        })?;
        Daemon::new(config_path, workspace.path(), pinned)
            .serve(signals)
            .await
    })
}

struct Daemon {
    config_path: PathBuf,
    workspace: PathBuf,
    generation: u32,
    pinned: Arc<Pinned>,
    schedule: Schedule,
    status: Arc<Mutex<Status>>,
}

/// A scan on its thread.
struct Running {
    result: oneshot::Receiver<FinishedScan>,
    trigger: Trigger,
    started: Timestamp,
}

/// What the loop waits for.
enum Wake {
    Due,
    Finished(Box<FinishedScan>),
    Stop(&'static str),
    Reload,
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> Result<Signals, DaemonError> {
        let listen = |kind| {
            signal(kind).map_err(|e| DaemonError::Setup(format!("cannot handle signals: {e}")))
        };
        Ok(Signals {
            terminate: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }

    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

impl Daemon {
    fn new(config_path: &Path, workspace: &Path, pinned: Pinned) -> Daemon {
        let schedule = Schedule::new(pinned.schedule());
        Daemon {
            config_path: config_path.to_owned(),
            workspace: workspace.to_owned(),
            generation: 1,
            status: Arc::new(Mutex::new(Status::new(schedule.describe()))),
            pinned: Arc::new(pinned),
            schedule,
        }
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn serve(mut self, mut signals: Signals) -> Result<(), DaemonError> {
        self.start_health_endpoint().await?;
        tracing::info!(
            config = %self.config_path.display(),
            schedule = %self.schedule.describe(),
            rules = %self.pinned.rules_origin.display(),
            "groupwarden run started"
        );
        let mut running = None;
        let mut retry_at: Option<Timestamp> = None;
        let mut tick = self.next_tick(Timestamp::now());
        if self.pinned.schedule().run_on_start {
            running = self.start(Trigger::Start);
        }
        loop {
            let due = earliest(tick.as_ref().map(|t| t.due), retry_at);
            self.status().next_scan = due;
            match self.wait(due, &mut running, &mut signals).await {
                Wake::Due => {
                    let now = Timestamp::now();
                    let trigger = if tick.as_ref().is_some_and(|t| t.due <= now) {
                        tick = self.next_tick(now);
                        Trigger::Schedule
                    } else if retry_at.is_some_and(|at| at <= now) {
                        retry_at = None;
                        Trigger::Retry
                    } else {
                        continue; // woke early to look at the clock
                    };
                    match &running {
                        Some(scan) => self.skip(trigger, scan),
                        None => {
                            retry_at = None;
                            running = self.start(trigger);
                        }
                    }
                }
                Wake::Finished(scan) => {
                    running = None;
                    retry_at = self.finish(*scan);
                }
                Wake::Reload => {
                    self.reload();
                    tick = self.next_tick(Timestamp::now());
                }
                Wake::Stop(signal) => return self.shut_down(signal, running, &mut signals).await,
            }
        }
    }

    async fn wait(
        &self,
        due: Option<Timestamp>,
        running: &mut Option<Running>,
        signals: &mut Signals,
    ) -> Wake {
        let sleep = async {
            match due {
                Some(due) => tokio::time::sleep(until(due).min(MAX_SLEEP)).await,
                None => std::future::pending().await,
            }
        };
        let finished = async {
            match running {
                Some(scan) => finished(scan).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => Wake::Due,
            scan = finished => Wake::Finished(Box::new(scan)),
            _ = signals.terminate.recv() => Wake::Stop("SIGTERM"),
            _ = signals.interrupt.recv() => Wake::Stop("SIGINT"),
            _ = signals.hangup.recv() => Wake::Reload,
        }
    }

    async fn start_health_endpoint(&self) -> Result<(), DaemonError> {
        let Some(health) = &self.pinned.loaded.config.health else {
            return Ok(());
        };
        let listener =
            TcpListener::bind(health.listen)
                .await
                .map_err(|error| DaemonError::Listen {
                    address: health.listen,
                    error,
                })?;
        let address = listener.local_addr().unwrap_or(health.listen);
        tracing::info!(%address, "health endpoint listening: /healthz, /metrics");
        tokio::spawn(super::http::serve(listener, self.status.clone()));
        Ok(())
    }

    fn next_tick(&self, after: Timestamp) -> Option<Tick> {
        let tick = self.schedule.next_tick(after, fastrand::f64());
        match &tick {
            Some(tick) => tracing::debug!(
                scheduled = %tick.scheduled,
                due = %tick.due,
                "next scheduled scan"
            ),
            None => tracing::warn!(
                schedule = %self.schedule.describe(),
                "the schedule names no future time: no more scheduled scans"
            ),
        }
        tick
    }

    fn start(&self, trigger: Trigger) -> Option<Running> {
        let job = ScanJob::new(self.pinned.clone());
        let started = Timestamp::now();
        match job.spawn(trigger) {
            Ok(result) => {
                tracing::info!(trigger = trigger.as_str(), "scan started");
                self.status().running_since = Some((started, trigger));
                Some(Running {
                    result,
                    trigger,
                    started,
                })
            }
            Err(error) => {
                tracing::error!(%error, "cannot start a scan thread; trying again at the next time");
                None
            }
        }
    }

    fn skip(&self, trigger: Trigger, scan: &Running) {
        tracing::warn!(
            trigger = trigger.as_str(),
            running_since = %scan.started,
            "scan skipped: the previous scan is still running"
        );
        self.status().ticks_skipped += 1;
    }

    /// Logs and counts a scan that ended; the time to retry a failed one.
    fn finish(&self, scan: FinishedScan) -> Option<Timestamp> {
        log_finished(&scan);
        let retry_at = match (&scan.result, self.pinned.schedule().retry_after) {
            (Err(_), Some(after)) => {
                let at = scan.finished.checked_add(signed(after.0)).ok();
                if let Some(at) = at {
                    tracing::info!(retry_at = %at, "will try again");
                }
                at
            }
            _ => None,
        };
        self.status().record(scan);
        retry_at
    }

    /// Pins the config file and rules as they are now, or keeps the
    /// running ones if they do not pass the checks.
    fn reload(&mut self) {
        tracing::info!(config = %self.config_path.display(), "SIGHUP: reloading the configuration and rules");
        self.generation += 1;
        let folder = self.workspace.join(self.generation.to_string());
        match pin(&self.config_path, &folder) {
            Ok(pinned) => {
                let old_listen = self.pinned.loaded.config.health.as_ref().map(|h| h.listen);
                let new_listen = pinned.loaded.config.health.as_ref().map(|h| h.listen);
                if old_listen != new_listen {
                    tracing::warn!("`health.listen` changed: the endpoint moves at the next start");
                }
                self.schedule = Schedule::new(pinned.schedule());
                self.pinned = Arc::new(pinned);
                let mut status = self.status();
                status.reloads_succeeded += 1;
                status.schedule = self.schedule.describe();
                drop(status);
                tracing::info!(schedule = %self.schedule.describe(), "configuration reloaded");
            }
            Err(problems) => {
                self.status().reloads_failed += 1;
                tracing::error!(
                    problems = problems.len(),
                    "reload refused, the running configuration stays:\n{}",
                    problems.join("\n")
                );
            }
        }
    }

    async fn shut_down(
        &self,
        signal: &'static str,
        running: Option<Running>,
        signals: &mut Signals,
    ) -> Result<(), DaemonError> {
        let Some(mut scan) = running else {
            tracing::info!(signal, "stopping");
            return Ok(());
        };
        let grace = self.pinned.schedule().grace_period.0;
        tracing::info!(
            signal,
            trigger = scan.trigger.as_str(),
            grace_period_s = grace.as_secs(),
            "stopping: no new scans; waiting for the running scan to finish"
        );
        tokio::select! {
            finished_scan = finished(&mut scan) => {
                self.finish(finished_scan);
                tracing::info!("stopped after the running scan finished");
                Ok(())
            }
            () = tokio::time::sleep(grace) => Err(DaemonError::GraceExpired(grace)),
            signal = signals.stop() => Err(DaemonError::StoppedWaiting(signal)),
        }
    }
}

/// The scan's result; a thread that died without one is a failed scan.
async fn finished(scan: &mut Running) -> FinishedScan {
    match (&mut scan.result).await {
        Ok(finished) => finished,
        Err(_) => {
            let now = Timestamp::now();
            FinishedScan {
                trigger: scan.trigger,
                started: scan.started,
                finished: now,
                duration: until_from(scan.started, now),
                result: Err("the scan stopped unexpectedly (a bug: please report it)".into()),
                undelivered: 0,
                tenants: Vec::new(),
            }
        }
    }
}

/// The one line each scan logs.
fn log_finished(scan: &FinishedScan) {
    let duration_ms = scan.duration.as_millis() as u64;
    match &scan.result {
        Ok(figures) => tracing::info!(
            trigger = scan.trigger.as_str(),
            outcome = "success",
            rows = figures.rows,
            row_errors = figures.row_errors,
            findings = figures.findings,
            rule_errors = figures.rule_errors,
            concealed_rows = figures.concealed_rows,
            findings_by_rule = %figures.findings_by_rule(),
            report_refresh_date = figures.report_refresh_date.as_deref().unwrap_or(""),
            duration_ms,
            "scan finished"
        ),
        Err(error) => tracing::error!(
            trigger = scan.trigger.as_str(),
            outcome = "failure",
            error = %error,
            duration_ms,
            "scan failed"
        ),
    }
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How long from now until `at` (zero if it is past).
fn until(at: Timestamp) -> Duration {
    until_from(Timestamp::now(), at)
}

fn until_from(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
