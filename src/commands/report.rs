//! `groupwarden report`: the scan, written as one self-contained HTML page.

use crate::cli::{HtmlReportArgs, ScanArgs};
use crate::output::Format;

use super::{Error, Outcome};

// `..default()` so scan options added later keep their defaults here.
#[allow(clippy::needless_update)]
pub fn run(args: HtmlReportArgs) -> Result<Outcome, Error> {
    let output = args.output.clone();
    let outcome = super::scan::run(ScanArgs {
        input: args.input,
        report: args.report,
        save_report: args.save_report,
        rules: args.rules,
        config: args.config,
        format: Some(Format::Html),
        output: Some(args.output),
        fail_on: args.fail_on,
        tuning: args.tuning,
        ..ScanArgs::default()
    })?;
    tracing::info!("wrote {}", output.display());
    Ok(outcome)
}
