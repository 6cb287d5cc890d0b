//! `groupwarden validate`: runs the checks of [`crate::pipeline::checks`]
//! and prints each verdict.

use std::io::{self, Write};

use crate::cli::ValidateArgs;
use crate::pipeline::checks::{Context, STEPS, Step, Verdict};

use super::{Error, Outcome};

/// Runs `groupwarden validate`.
pub(crate) fn run(args: ValidateArgs) -> Result<Outcome, Error> {
    let mut context = Context {
        config_flag: args.location.config,
        rules_flag: args.location.rules,
        loaded: None,
    };
    let problems = run_steps(STEPS, &mut context, &mut io::stdout().lock())?;
    Ok(if problems == 0 {
        Outcome::Clean
    } else {
        Outcome::Failing
    })
}

/// Runs `steps`, prints each verdict and returns the number of problems.
pub(crate) fn run_steps(
    steps: &[Step],
    context: &mut Context,
    out: &mut dyn Write,
) -> io::Result<usize> {
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut problems = 0;
    for step in steps {
        match (step.run)(context) {
            Verdict::Ok(summary) => writeln!(out, "ok    {:width$}  {summary}", step.name)?,
            Verdict::Skipped(reason) => writeln!(out, "skip  {:width$}  {reason}", step.name)?,
            Verdict::Problems(list) => {
                problems += list.len();
                writeln!(out, "FAIL  {:width$}  {} problem(s)", step.name, list.len())?;
                for problem in list {
                    let indented: Vec<String> =
                        problem.lines().map(|l| format!("      {l}")).collect();
                    writeln!(out, "{}", indented.join("\n"))?;
                }
            }
        }
    }
    match problems {
        0 => writeln!(out, "\nvalid")?,
        n => writeln!(out, "\n{n} problem(s)")?,
    }
    Ok(problems)
}
