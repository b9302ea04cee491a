//! `nbody`: the charged N-body table (`--quick`, `--standard`, `--smoke` as every experiment),
//! or `--evaluate <run> --data <folder>`: the test MSE of a trained run on a folder of the
//! published generator's `.npy` files.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tf_experiments::Args;

#[derive(Parser, Debug)]
#[command(
    about = "The charged N-body benchmark: train the table, or evaluate a trained run",
    after_help = "Examples:\n  cargo run --release -p nbody -- --quick\n  cargo run --release -p nbody -- --standard --summaries-only\n  cargo run --release -p nbody -- --evaluate runs/experiments/nbody-tf-gnn-tensorial-d3-seed0-<hash> --data <folder of loc_test_charged5_initvel1small.npy, vel_..., charges_...> --json"
)]
struct Cli {
    #[command(flatten)]
    args: Args,
    /// A trained run folder (or its weights file, with `config.json` beside it): print its
    /// test MSE on the `--data` folder's published files instead of training.
    #[arg(long, requires = "data")]
    evaluate: Option<PathBuf>,
    /// Which split of the `--data` files `--evaluate` reads (train, valid, test).
    #[arg(long, default_value = "test")]
    split: String,
    /// With `--evaluate`: one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Training runs at a time (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Train nothing: write the table from the committed run summaries alone, marked
    /// incomplete while runs of the plan are missing (standard mode, between sittings).
    #[arg(long)]
    summaries_only: bool,
}

fn main() -> ExitCode {
    tf_experiments::init_logs();
    let cli = Cli::parse();
    let result = match (&cli.evaluate, &cli.args.data) {
        (Some(run), Some(folder)) => cli
            .args
            .device
            .device()
            .map_err(anyhow::Error::from)
            .and_then(|dev| nbody::evaluate_published(run, folder, &cli.split, &dev))
            .map(|(mse, n)| {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "run": run, "data": folder, "split": cli.split, "systems": n, "mse": mse })
                );
            } else {
                println!("{} systems of {}: test MSE {mse:.6}", n, folder.display());
            }
        }),
        _ => tf_experiments::run(
            &nbody::NBody {
                jobs: cli.jobs,
                summaries_only: cli.summaries_only,
            },
            &cli.args,
        ).map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
