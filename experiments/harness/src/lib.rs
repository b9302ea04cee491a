//! The harness every paper-table experiment shares, so a new table is one small crate.
//!
//! An experiment implements [`Experiment`]: a name (the output file stem), the paper's claim,
//! and `run`, which trains rows through [`Ctx::fit`] (cached, resumable training runs keyed by
//! their full configuration), evaluates them, and returns a [`Report`]. [`main`] supplies the
//! command line (`--quick`, `--standard`, `--smoke`, `--data`, `--seeds`, `--out`, `--runs`,
//! `--summaries`), logs,
//! timing and the outputs: `<out>/<name>.md`, `<out>/<name>.json` and training curves
//! `<out>/<name>-curves.svg`.
//!
//! ```no_run
//! use tf_experiments::{Ctx, Experiment, Report};
//!
//! struct Hello;
//! impl Experiment for Hello {
//!     fn name(&self) -> &'static str { "hello" }
//!     fn title(&self) -> &'static str { "A table with one row" }
//!     fn claim(&self) -> &'static str { "Nothing to confirm." }
//!     fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report> {
//!         let mut report = Report::new(&["value"]);
//!         report.row("one", vec![1.0.into()]);
//!         report.verdict = format!("ran in {} mode", ctx.mode.name());
//!         Ok(report)
//!     }
//! }
//! fn main() -> std::process::ExitCode { tf_experiments::main(Hello) }
//! ```

mod ctx;
mod experiment;
mod report;
mod rows;
mod stat;
mod variant;
pub mod verdict;

pub use ctx::{
    pca_metrics, Args, Ctx, Evaluated, Fitted, Mode, RunSummary, Task, LR_GRID, STANDARD_EPOCHS,
    STANDARD_PATIENCE,
};
pub use experiment::Experiment;
pub use report::{Report, Row};
pub use rows::{compare_paper_rows, Column, Comparison};
pub use stat::{Cell, Stat};
pub use tf_train::plot::{curves_svg, loglog_svg, Series};
pub use variant::{Variant, PAPER_ROWS};
pub use verdict::{Paired, Verdict};

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// Runs `exp` with arguments from the command line; the binary's `main`.
pub fn main<E: Experiment>(exp: E) -> ExitCode {
    init_logs();
    let args = Args::parse();
    match run(&exp, &args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise (idempotent).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one experiment with parsed arguments and writes its outputs; returns the report.
pub fn run(exp: &dyn Experiment, args: &Args) -> anyhow::Result<Report> {
    let start = Instant::now();
    let mut ctx = Ctx::new(args, exp.name())?;
    tracing::info!(experiment = exp.name(), mode = ctx.mode.name(), "start");
    let mut report = exp.run(&mut ctx)?;
    report.seconds = start.elapsed().as_secs_f64();
    let about = report::About {
        name: exp.name(),
        title: exp.title(),
        claim: exp.claim(),
    };
    report.finish(&about, &ctx)?;
    tracing::info!(
        experiment = exp.name(),
        seconds = report.seconds,
        out = %ctx.out.display(),
        "done"
    );
    Ok(report)
}

/// Runs an experiment binary with `--smoke` into a temporary folder and checks its outputs:
/// the JSON table says smoke mode and has `rows` rows, the Markdown states the claim. Returns
/// the JSON (and keeps the folder alive while the caller inspects it). Every experiment
/// crate's `tests/smoke.rs` calls this, so `cargo test` runs every binary end to end.
pub fn smoke_test(
    binary: &str,
    name: &str,
    rows: usize,
) -> anyhow::Result<(serde_json::Value, tempfile::TempDir)> {
    use anyhow::{ensure, Context};
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("results");
    let status = std::process::Command::new(binary)
        .args(["--smoke", "--out"])
        .arg(&out)
        .arg("--runs")
        .arg(dir.path().join("runs"))
        .status()
        .with_context(|| format!("running {binary}"))?;
    ensure!(status.success(), "{binary} --smoke failed: {status}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(format!("{name}.json")))?)?;
    ensure!(json["mode"] == "smoke", "mode is {}", json["mode"]);
    let n = json["report"]["rows"].as_array().map_or(0, Vec::len);
    ensure!(n == rows, "{n} rows, expected {rows}");
    let md = std::fs::read_to_string(out.join(format!("{name}.md")))?;
    ensure!(
        md.contains("Paper's claim") && md.contains("Mode: smoke"),
        "incomplete {name}.md"
    );
    Ok((json, dir))
}
