//! The `tensor-frames` command line: one module per subcommand, each its arguments and `run`.
//!
//! ```sh
//! tensor-frames predict --input scan.ply --out scan_normals.xyz
//! tensor-frames equivariance --layer edgeconv --dim 5 --dtype f64 --json
//! ```

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod data;
mod equivariance;
mod evaluate_normals;
mod predict;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tensor-frames",
    version,
    about = "Exactly O(d)-equivariant message passing with tensor frames"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads for the CPU kernels, neighbour searches and features (default: one per
    /// core).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Estimate normals (or parts, or the class) of your own mesh or point cloud, any size,
    /// pose and scale; the bundled normal estimator unless --checkpoint says otherwise.
    Predict(predict::Args),
    /// Train a model (resumes when --out already holds checkpoints of the same run), then
    /// report test metrics on canonical and randomly rotated/reflected shapes.
    Train(train::Args),
    /// Compare a normal estimator with PCA normals on held-out real shapes under random O(3)
    /// transformations; writes a Markdown and a JSON table.
    EvaluateNormals(evaluate_normals::Args),
    /// Measure the equivariance error of a built-in layer, model or checkpoint, end to end
    /// (global in -> global out).
    Equivariance(equivariance::Args),
    /// Measure every built-in layer in several dimensions and frame builders; write a table.
    EquivarianceTable(equivariance::TableArgs),
    /// Redraw a run's training curves (<run>/curves.svg) from its metrics.jsonl.
    Curves {
        /// The run directory.
        run: std::path::PathBuf,
    },
    /// Datasets: write the synthetic set, convert meshes, or inspect a file or folder.
    #[command(subcommand)]
    Data(data::Command),
}

fn main() {
    let cli = Cli::parse();
    // Logs go to stderr; RUST_LOG overrides the default level.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            std::process::exit(2);
        }
        // candle's own CPU ops and our kernels both run on rayon's global pool.
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: --threads {n}: {e}");
            std::process::exit(2);
        }
    }
    let result = match cli.command {
        Command::Predict(a) => predict::run(a),
        Command::Train(a) => train::run(a),
        Command::EvaluateNormals(a) => evaluate_normals::run(a),
        Command::Equivariance(a) => equivariance::run(a),
        Command::EquivarianceTable(a) => equivariance::table(a),
        Command::Curves { run } => tensor_frames::train::draw_curves(&run)
            .map(|p| println!("wrote {}", p.display()))
            .map_err(Into::into),
        Command::Data(c) => data::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
