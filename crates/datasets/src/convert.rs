//! Converting a folder of meshes into the ModelNet40-normal layout: every mesh found below a
//! folder is oriented outward, sampled, normalised and written with its class (the mesh's parent
//! folder), a train/test split by file name, and a provenance file.
//!
//! The split hashes the file name only, so a shape keeps its split when meshes are added.
//! The provenance file ([`SOURCES_FILE`]) records each shape's source mesh and how its
//! components were oriented: the oriented score of a shape without a defined outside (a single
//! triangle, a non-manifold sheet) is meaningless, and evaluations use it to say so.

use std::path::{Path, PathBuf};

use rand::SeedableRng;

use crate::error::DataError;
use crate::mesh::{is_mesh_path, read_mesh, MeshNormals, MESH_EXTENSIONS};
use crate::modelnet::{write_modelnet_normal, SOURCES_FILE};
use crate::orient::Orientation;

/// What [`convert_meshes`] does.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertOptions {
    /// Points sampled per shape (area-uniform, with face normals).
    pub points: usize,
    /// Fraction of shapes (by a hash of the file name) in the test split, in `[0, 1)`.
    pub test_fraction: f64,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            points: 10_000,
            test_fraction: 0.2,
            seed: 0,
        }
    }
}

/// What [`convert_meshes`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvertReport {
    /// Meshes found.
    pub meshes: usize,
    /// Shapes written to the train split.
    pub train: usize,
    /// Shapes written to the test split.
    pub test: usize,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Orientation of the mesh components, summed over all meshes read.
    pub orientation: Orientation,
    /// Meshes that could not be used, with the reason.
    pub skipped: Vec<String>,
}

/// Every mesh file below `dir`, recursively, in sorted order.
pub fn mesh_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    collect(dir, &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if is_mesh_path(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The class of a mesh: its parent folder, with KiCad's `<Category>.3dshapes` suffix dropped and
/// separators made dashes.
pub fn class_of(mesh: &Path) -> String {
    let folder = mesh
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("shapes");
    folder
        .trim_end_matches(".3dshapes")
        .replace(['_', ' ', '.'], "-")
}

/// True when the shape from `mesh` goes to the test split: FNV-1a of the file name, per mille,
/// below `test_fraction`.
pub fn in_test_split(mesh: &Path, test_fraction: f64) -> bool {
    let h = mesh
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                })
        })
        .unwrap_or(0);
    ((h % 1000) as f64 / 1000.0) < test_fraction
}

/// Samples every mesh below `meshes` into the ModelNet40-normal layout at `out` (see the module
/// docs). Meshes that cannot be read or sampled are skipped and listed in the report.
pub fn convert_meshes(
    meshes: &Path,
    out: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport, DataError> {
    if opts.points == 0 || !(0.0..1.0).contains(&opts.test_fraction) {
        return Err(DataError::layout(
            out,
            "points must be positive and the test fraction in [0, 1)",
        ));
    }
    let files = mesh_files(meshes)?;
    if files.is_empty() {
        return Err(DataError::layout(
            meshes,
            format!(
                "no meshes ({}, optionally .gz) below this folder",
                MESH_EXTENSIONS.join(", ")
            ),
        ));
    }
    let mut classes: Vec<String> = files.iter().map(|p| class_of(p)).collect();
    classes.sort();
    classes.dedup();
    let mut report = ConvertReport {
        meshes: files.len(),
        ..Default::default()
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    // Per written shape: its source mesh and how its components were oriented.
    let (mut train_src, mut test_src) = (Vec::new(), Vec::new());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    for f in &files {
        let label = classes.iter().position(|c| *c == class_of(f)).unwrap_or(0) as u32;
        // Ground-truth normals must point outward: reverse inside-out closed components first.
        let mut this = Orientation::default();
        let sampled = read_mesh(f).and_then(|mut m| {
            let o = m.orient_outward();
            tracing::debug!(mesh = %f.display(), ?o, "orientation");
            report.orientation.closed += o.closed;
            report.orientation.open += o.open;
            report.orientation.flipped += o.flipped;
            report.orientation.undefined += o.undefined;
            this = o;
            m.sample(opts.points, MeshNormals::Face, 0.0, label, &mut rng)
        });
        let source = f.strip_prefix(meshes).unwrap_or(f).display().to_string();
        match sampled {
            Ok(mut shape) => {
                shape.normalize();
                if in_test_split(f, opts.test_fraction) {
                    test.push(shape);
                    test_src.push((source, this));
                } else {
                    train.push(shape);
                    train_src.push((source, this));
                }
            }
            Err(e) => report.skipped.push(e.to_string()),
        }
    }
    let names: Vec<&str> = classes.iter().map(String::as_str).collect();
    let ids = write_modelnet_normal(out, "real", &names, &train, &test)?;
    let mut tsv = String::from("id\tsplit\tsource\tclosed\topen\treversed\tundefined\n");
    let splits =
        std::iter::repeat_n("train", train.len()).chain(std::iter::repeat_n("test", test.len()));
    for ((id, split), (source, o)) in ids
        .iter()
        .zip(splits)
        .zip(train_src.iter().chain(&test_src))
    {
        tsv.push_str(&format!(
            "{id}\t{split}\t{source}\t{}\t{}\t{}\t{}\n",
            o.closed, o.open, o.flipped, o.undefined
        ));
    }
    // Written last and atomically: a folder with this file is a finished conversion.
    let path = out.join(SOURCES_FILE);
    let tmp = out.join(format!("{SOURCES_FILE}.tmp"));
    std::fs::write(&tmp, tsv).map_err(|e| DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| DataError::io(&path, e))?;
    report.train = train.len();
    report.test = test.len();
    report.classes = classes;
    Ok(report)
}
