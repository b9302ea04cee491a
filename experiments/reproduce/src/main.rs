//! `reproduce`: every table of the paper in one command (`just reproduce` / `cargo reproduce`).
//!
//! Runs the experiments in order, sharing trained rows through the run cache, then writes
//! `<out>/summary.md` with the verdict and wall time of every table in that folder. `--only`
//! picks tables.

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
        Box::new(nbody::NBody::default()),
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
    summary.push_str(
        "| table | mode | wall time | training time of its runs | verdict |\n|---|---|---|---|---|\n",
    );
    let mut failed = false;
    let out = cli.args.out_dir();
    for exp in all
        .iter()
        .filter(|e| cli.only.is_empty() || cli.only.iter().any(|n| n == e.name()))
    {
        if let Err(e) = tf_experiments::run(exp.as_ref(), &cli.args) {
            eprintln!("error in {}: {e:#}", exp.name());
            summary.push_str(&format!(
                "| {} | {} | - | - | FAILED: {e} |\n",
                exp.title(),
                mode.name()
            ));
            failed = true;
        }
    }
    // One line per table whose output is in the folder, from its JSON, so a run of some
    // tables (`--only`, or standard mode over several sittings) keeps the others' lines.
    let (lines, total, total_training) = table_lines(&all, &out, "");
    summary.push_str(&lines);
    summary.push_str(&format!(
        "\nWall time of the tables' last runs, summed: {total:.0} s (elapsed now: {:.0} s). \
         Training time of the runs behind the tables, summed per table: {} (a run shared by two \
         tables counts in both; the wall time of each run's training, which bounds its CPU time \
         from above when, as for the committed standard runs, it trained on one thread).\n",
        start.elapsed().as_secs_f64(),
        duration(total_training)
    ));
    // `--data` runs write their tables into a subfolder named after the data; the index of
    // the synthetic tables repeats their lines, so every verdict is in one place.
    if cli.args.data.is_none() {
        let mut others: Vec<String> = std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("summary.md").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !["quick", "smoke", "standard"].contains(&n.as_str()))
            .collect();
        others.sort();
        for name in others {
            let (lines, _, training) = table_lines(&all, &out.join(&name), &format!("{name}/"));
            summary.push_str(&format!(
                "\n## The same tables on `--data {name}` ([its summary]({name}/summary.md); \
                 training time {})\n\n| table | mode | wall time | training time of its runs | \
                 verdict |\n|---|---|---|---|---|\n{lines}",
                duration(training)
            ));
        }
    }
    let path = out.join("summary.md");
    let tmp = path.with_extension("md.tmp");
    if let Err(e) = std::fs::write(&tmp, &summary).and_then(|_| std::fs::rename(&tmp, &path)) {
        eprintln!("error: writing {}: {e}", path.display());
        return ExitCode::from(2);
    }
    println!("{summary}");
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The summary lines of the tables in `dir` (links prefixed with `prefix`), with their wall
/// time and training time summed.
fn table_lines(
    all: &[Box<dyn Experiment>],
    dir: &std::path::Path,
    prefix: &str,
) -> (String, f64, f64) {
    let (mut lines, mut total, mut total_training) = (String::new(), 0.0, 0.0);
    for exp in all {
        let path = dir.join(format!("{}.json", exp.name()));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let seconds = json["seconds"].as_f64().unwrap_or(0.0);
        let training = json["train_seconds"].as_f64().unwrap_or(0.0);
        total += seconds;
        total_training += training;
        lines.push_str(&format!(
            "| [{}]({prefix}{}.md) | {} | {:.0} s | {} | {} |\n",
            exp.title(),
            exp.name(),
            json["mode"].as_str().unwrap_or("?"),
            seconds,
            duration(training),
            json["report"]["verdict"]
                .as_str()
                .unwrap_or("")
                .replace('|', "/")
        ));
    }
    (lines, total, total_training)
}

/// `3725.0` -> `1.0 h`, `95.0` -> `2 min`, `4.0` -> `4 s`.
fn duration(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}
