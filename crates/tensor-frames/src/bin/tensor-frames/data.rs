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
    /// Counts, classes and point statistics of a dataset folder (every shape is read) or of
    /// one file of any format predict reads; names every bad file and fails if there is one.
    Inspect {
        /// A dataset folder, a mesh, a point cloud (.ply .pcd .npy) or a text point set.
        path: std::path::PathBuf,
    },
}

/// Builds a dataset folder atomically: `build` writes into a temporary sibling of `out`, which
/// then replaces `out` in one rename (an older dataset there is moved aside first and removed
/// after), so an interrupted rewrite never leaves a folder mixing old and new shapes. An
/// existing `out` that is not a dataset folder (no `*_shape_names.txt`) is refused rather
/// than replaced.
fn build_atomically<T>(
    out: &std::path::Path,
    build: impl FnOnce(&std::path::Path) -> Result<T>,
) -> Result<T> {
    let is_dataset = |p: &std::path::Path| {
        std::fs::read_dir(p).is_ok_and(|mut it| {
            it.any(|e| {
                e.is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .ends_with("_shape_names.txt")
                })
            })
        })
    };
    let empty = |p: &std::path::Path| std::fs::read_dir(p).is_ok_and(|mut it| it.next().is_none());
    if out.exists() && !(out.is_dir() && (is_dataset(out) || empty(out))) {
        bail!(
            "--out {} exists and is not a dataset folder; choose a new or empty folder",
            out.display()
        );
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let pid = std::process::id();
    let tmp = parent.join(format!(".{name}.building-{pid}"));
    let old = parent.join(format!(".{name}.old-{pid}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let value = match build(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        std::fs::rename(out, &old)?;
    }
    std::fs::rename(&tmp, out)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(value)
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
    let r = build_atomically(out, |tmp| Ok(convert_meshes(meshes, tmp, &opts)?))?;
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

/// `data inspect`: every shape of a dataset folder, or one file of any format predict or train
/// reads; an error names each bad file, and the command fails if any is bad.
fn inspect(path: &std::path::Path) -> Result<()> {
    use tensor_frames::datasets::{ModelNetNormal, Split};
    if path.is_dir() {
        let m = ModelNetNormal::open(path)?;
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
        let (mut ok, mut bad) = (0usize, Vec::new());
        let mut points = 0usize;
        for split in [Split::Train, Split::Test] {
            for e in m.entries(split) {
                match m.load(e) {
                    Ok(s) => {
                        ok += 1;
                        points += s.len();
                    }
                    Err(err) => bad.push(err.to_string()),
                }
            }
        }
        println!(
            "{ok} shapes read ({} points on average), {} bad",
            points / ok.max(1),
            bad.len()
        );
        for b in &bad {
            println!("  bad: {b}");
        }
        if !bad.is_empty() {
            bail!("{} of {} shapes cannot be read", bad.len(), ok + bad.len());
        }
        return Ok(());
    }
    // Anything predict reads: meshes, PLY/PCD/NPY clouds, text with 3, 6 or 7 columns. A bad
    // text row is an error naming its line; the NaN holes binary clouds may carry are counted
    // (predict --skip-invalid drops them).
    let (points, normals) = tensor_frames::predict::read_input_with(path, None, false)?;
    let n = points.len() / 3;
    let invalid = points
        .chunks(3)
        .filter(|p| p.iter().any(|v| !v.is_finite()))
        .count();
    let s = tensor_frames::datasets::Shape {
        d: 3,
        points: points.clone(),
        normals: normals.clone().unwrap_or_else(|| vec![0.0; points.len()]),
        parts: None,
        label: 0,
    };
    println!(
        "{}: {}{}{}",
        path.display(),
        stats(&s),
        if normals.is_some() {
            ", with normals"
        } else {
            ", no normals"
        },
        if invalid > 0 {
            format!(
                ", {invalid} of {n} points with a non-finite coordinate (predict \
                 --skip-invalid drops them)"
            )
        } else {
            String::new()
        }
    );
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
    use tensor_frames::datasets::{write_modelnet_normal, Split, Synthetic, SYNTHETIC_CLASS_NAMES};
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
                warp: 0.0,
                seed,
            };
            let train: Vec<_> = (0..d.len()).map(|i| d.shape(Split::Train, i)).collect();
            let test: Vec<_> = (0..d.len()).map(|i| d.shape(Split::Test, i)).collect();
            build_atomically(&out, |tmp| {
                Ok(write_modelnet_normal(
                    tmp,
                    "synthetic",
                    &SYNTHETIC_CLASS_NAMES,
                    &train,
                    &test,
                )?)
            })?;
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
        Command::Inspect { path } => inspect(&path)?,
    }
    Ok(())
}
