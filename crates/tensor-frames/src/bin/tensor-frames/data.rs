//! `tensor-frames data`: write the synthetic set, convert a folder of meshes, inspect a file or
//! folder.

use anyhow::{bail, Result};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Write the synthetic dataset in the ModelNet40-normal layout.
    Synth {
        /// Output folder.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Shapes per class and split.
        #[arg(long, default_value_t = 20)]
        shapes_per_class: usize,
        /// Points per shape.
        #[arg(long, default_value_t = 1024)]
        points: usize,
        /// Gaussian position noise.
        #[arg(long, default_value_t = 0.0)]
        noise: f64,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Sample every mesh under a folder (OFF/OBJ/STL/PLY/WRL, optionally .gz) into the
    /// ModelNet40-normal layout: class = the mesh's parent folder, train/test split by a hash
    /// of the file name, provenance in sources.tsv.
    Convert {
        /// Folder searched recursively for meshes.
        #[arg(long)]
        meshes: std::path::PathBuf,
        /// Output folder.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Points per shape.
        #[arg(long, default_value_t = 10_000)]
        points: usize,
        /// Fraction of shapes (by a hash of the file name) in the test split.
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Seed of the sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Counts, classes and point statistics of a point-set file or a ModelNet-normal folder;
    /// says what is wrong with a bad one.
    Inspect {
        /// A `.xyz`/`.txt` point set or a dataset folder.
        path: std::path::PathBuf,
    },
}

fn convert(
    meshes: &std::path::Path,
    out: &std::path::Path,
    points: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<()> {
    use tensor_frames::datasets::{convert_meshes, ConvertOptions};
    let opts = ConvertOptions {
        points,
        test_fraction,
        seed,
    };
    let r = convert_meshes(meshes, out, &opts)?;
    println!(
        "{} meshes -> {} train + {} test shapes of {points} points in {} classes at {}; {} skipped",
        r.meshes,
        r.train,
        r.test,
        r.classes.len(),
        out.display(),
        r.skipped.len()
    );
    let o = &r.orientation;
    println!(
        "mesh components: {} closed and {} open with consistent winding ({} were inside out and \
         got reversed), {} without a defined outside (kept as wound)",
        o.closed, o.open, o.flipped, o.undefined
    );
    for s in &r.skipped {
        println!("  skipped: {s}");
    }
    Ok(())
}

fn stats(s: &tensor_frames::datasets::Shape) -> String {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in s.points.chunks_exact(3) {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    format!(
        "{} points, bounding box [{:.3}, {:.3}] x [{:.3}, {:.3}] x [{:.3}, {:.3}]{}",
        s.len(),
        lo[0],
        hi[0],
        lo[1],
        hi[1],
        lo[2],
        hi[2],
        s.parts
            .as_ref()
            .map(|p| format!(", {} part labels", p.len()))
            .unwrap_or_default()
    )
}

pub(crate) fn run(cmd: Command) -> Result<()> {
    use tensor_frames::datasets::{
        read_point_set, write_modelnet_normal, Columns, ModelNetNormal, Split, Synthetic,
        SYNTHETIC_CLASS_NAMES,
    };
    match cmd {
        Command::Synth {
            out,
            shapes_per_class,
            points,
            noise,
            seed,
        } => {
            if points == 0 || !(noise >= 0.0 && noise.is_finite()) {
                bail!("--points must be positive and --noise finite and non-negative");
            }
            let d = Synthetic {
                shapes_per_class,
                points,
                noise,
                seed,
            };
            let train: Vec<_> = (0..d.len()).map(|i| d.shape(Split::Train, i)).collect();
            let test: Vec<_> = (0..d.len()).map(|i| d.shape(Split::Test, i)).collect();
            write_modelnet_normal(&out, "synthetic", &SYNTHETIC_CLASS_NAMES, &train, &test)?;
            println!(
                "wrote {} train and {} test shapes of {points} points to {}",
                train.len(),
                test.len(),
                out.display()
            );
        }
        Command::Convert {
            meshes,
            out,
            points,
            test_fraction,
            seed,
        } => convert(&meshes, &out, points, test_fraction, seed)?,
        Command::Inspect { path } => {
            if path.is_dir() {
                let m = ModelNetNormal::open(&path)?;
                println!(
                    "ModelNet-normal layout: {} classes, {} train, {} test shapes",
                    m.classes.len(),
                    m.train.len(),
                    m.test.len()
                );
                for (label, name) in m.classes.iter().enumerate() {
                    let count = |split: Split| {
                        m.entries(split)
                            .iter()
                            .filter(|e| e.label as usize == label)
                            .count()
                    };
                    println!(
                        "  {label:>3} {name:<24} train {:>5}  test {:>5}",
                        count(Split::Train),
                        count(Split::Test)
                    );
                }
                if let Some(e) = m.train.first() {
                    println!("first shape {}: {}", e.id, stats(&m.load(e)?));
                }
            } else {
                let s = read_point_set(&path, Columns::Normals, 0)
                    .or_else(|_| read_point_set(&path, Columns::NormalsAndPart, 0))
                    .or_else(|_| read_point_set(&path, Columns::Normals, 0))?;
                println!("{}: {}", path.display(), stats(&s));
            }
        }
    }
    Ok(())
}
