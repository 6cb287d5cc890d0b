//! Rules: loading, the sandbox, what scripts see, evaluation.
//!
//! A rule is one `*.rhai` file. Its top level declares metadata as
//! constants (`ID`, `TITLE`, `SEVERITY`, `DESCRIPTION`, `PARAMS`) and runs
//! once, at load time; its `check(row, params)` function runs for every row
//! and returns what it found ([`finding`] says what a return value may be).
//! A rule may also define `tenant(summary, params)`, run once after the last
//! row over a summary of the whole report ([`tenant`]).
//!
//! [`sandbox`] builds the one [`rhai::Engine`] every rule runs in: no file
//! or network access, no `eval`, no `import`, bounded operations, depth and
//! sizes. [`rule`] compiles each file once into a [`rule::Rule`], with its
//! [`params`] and its `check` compiled for the fast path ([`native`], which
//! computes with [`value::Value`]s); [`eval::Evaluator`] runs all rules over
//! one row with a reused scope, one evaluator per worker thread, and can
//! render findings to bytes through an output format's [`render::Render`].
//! [`diagnostics`] turns Rhai's errors into messages with the file, line,
//! column and a caret.
//!
//! For rule writers: [`ruletest`] runs the cases of `<rule>.test.toml`
//! through the real parser and evaluator, and [`reference`](mod@reference)
//! generates the field reference of `docs/writing-rules.md` from the
//! tables the engine itself runs on.
//!
//! The engine is a leaf above [`crate::report`]: it imports nothing else of
//! the crate. What it needs from the stages above (how findings are
//! written) it defines as a contract for them to implement ([`render`]).

pub mod config;
pub(crate) mod diagnostics;
pub mod eval;
pub mod finding;
pub(crate) mod native;
pub(crate) mod params;
pub(crate) mod reference;
pub(crate) mod render;
pub mod rule;
pub(crate) mod ruletest;
pub mod sandbox;
pub(crate) mod tenant;
pub(crate) mod value;
