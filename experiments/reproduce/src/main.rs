//! `reproduce`: every table of the paper in one command (`just reproduce` / `cargo reproduce`).
//!
//! Runs the experiments in order, sharing trained rows through the run cache, then writes
//! `<out>/summary.md` with each table's verdict and wall time. `--only` picks tables.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use tf_experiments::{Args, Experiment};

#[derive(Parser, Debug)]
#[command(about = "Reproduce every table of the tensor-frames paper")]
struct Cli {
    #[command(flatten)]
    args: Args,
    /// Only these tables (comma separated names, e.g. t1-normals,f4-data-efficiency).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn experiments() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(equivariance::Equivariance),
        Box::new(overhead::Overhead),
        Box::new(t1_normals::T1),
        Box::new(t4_ablation::T4),
        Box::new(t2_segmentation::T2),
        Box::new(t3_classification::T3),
        Box::new(f4_data_efficiency::F4),
        Box::new(normals_nd::NormalsNd),
    ]
}

fn main() -> ExitCode {
    tf_experiments::init_logs();
    let cli = Cli::parse();
    let all = experiments();
    let names: Vec<&str> = all.iter().map(|e| e.name()).collect();
    if let Some(bad) = cli.only.iter().find(|n| !names.contains(&n.as_str())) {
        eprintln!("error: unknown table {bad:?}; tables: {}", names.join(", "));
        return ExitCode::from(2);
    }
    let start = Instant::now();
    let mode = cli.args.mode();
    let mut summary = String::from(
        "# Reproduction summary\n\nOne line per table: our verdict on the paper's claim, computed from our numbers \
         (a claim is confirmed or contradicted only when the paired 95% interval over seeds excludes zero; \
         inconclusive otherwise). Each table's file says which data, mode and seeds produced it.\n\n",
    );
    if !mode.is_evidence() {
        summary.push_str(&format!(
            "**{} run: not evidence.** One seed and a short fixed budget check the pipeline; the \
             standard-mode tables in `papers/tensor-frames/results/` are the evidence.\n\n",
            mode.name()
        ));
    }
    summary.push_str("| table | mode | wall time | verdict |\n|---|---|---|---|\n");
    let mut failed = false;
    for exp in all
        .iter()
        .filter(|e| cli.only.is_empty() || cli.only.iter().any(|n| n == e.name()))
    {
        match tf_experiments::run(exp.as_ref(), &cli.args) {
            Ok(r) => summary.push_str(&format!(
                "| [{}]({}.md) | {} | {:.0} s | {} |\n",
                exp.title(),
                exp.name(),
                mode.name(),
                r.seconds,
                r.verdict.replace('|', "/")
            )),
            Err(e) => {
                eprintln!("error in {}: {e:#}", exp.name());
                summary.push_str(&format!(
                    "| {} | {} | - | FAILED: {e} |\n",
                    exp.title(),
                    mode.name()
                ));
                failed = true;
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    summary.push_str(&format!(
        "\nTotal wall time of the experiments: {total:.0} s.\n"
    ));
    if cli.only.is_empty() {
        let path = cli.args.out_dir().join("summary.md");
        let tmp = path.with_extension("md.tmp");
        if let Err(e) = std::fs::write(&tmp, &summary).and_then(|_| std::fs::rename(&tmp, &path)) {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    println!("{summary}");
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
