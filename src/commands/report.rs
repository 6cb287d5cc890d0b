//! `groupwarden report`: the scan, written as one self-contained HTML page.

use crate::cli::HtmlReportArgs;
use crate::output::Format;
use crate::pipeline::{OutputPlan, ScanPlan};
use crate::state::recording::RecordingPlan;

use super::{Error, Outcome, report_input};

/// Runs `groupwarden report`.
pub(crate) fn run(args: HtmlReportArgs) -> Result<Outcome, Error> {
    let plan = ScanPlan {
        config: args.config,
        rules_dir: args.rules,
        input: report_input(args.input, &args.report, args.save_report, &args.tuning),
        output: OutputPlan {
            path: Some(args.output.clone()),
            format: Some(Format::Html),
            discard: false,
            raw_csv: false,
        },
        // The page shows the state; recording (and announcing) is the
        // scan's job, so `report` on another file changes nothing.
        record: None,
        tuning: super::scan::tuning(&args.tuning),
        read_state: Some(RecordingPlan {
            path: args.state.clone(),
            allow_older: false,
        }),
        preview: false,
        tenant: args.tenant.clone(),
    };
    let mut outcome = crate::pipeline::scan(&plan)?;
    let result = super::scan::finish(&mut outcome, args.fail_on)?;
    tracing::info!("wrote {}", args.output.display());
    Ok(result)
}
