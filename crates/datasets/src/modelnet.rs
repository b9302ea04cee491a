//! The ModelNet40 "normal resampled" layout (as distributed with PointNet++):
//!
//! ```text
//! root/
//!   modelnet40_shape_names.txt      one class name per line (the label is the line index)
//!   modelnet40_train.txt            one shape id per line, e.g. airplane_0001
//!   modelnet40_test.txt
//!   airplane/airplane_0001.txt      x,y,z,nx,ny,nz per line
//! ```
//!
//! Any `*_shape_names.txt`, `*_train.txt`, `*_test.txt` trio is accepted (ModelNet10, or the
//! synthetic set written in this layout). Opening reads only the index; shapes are read one at a
//! time, so memory stays bounded by one shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::orient::Orientation;
use crate::pointset::{read_point_set, Columns};
use crate::shape::Shape;
use crate::synthetic::Split;

/// One shape of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Shape id, e.g. `airplane_0001`.
    pub id: String,
    /// Class index.
    pub label: u32,
    /// The point file.
    pub path: PathBuf,
}

/// An opened ModelNet-normal folder.
#[derive(Debug, Clone)]
pub struct ModelNetNormal {
    /// Class names by label.
    pub classes: Vec<String>,
    /// Training shapes.
    pub train: Vec<Entry>,
    /// Test shapes.
    pub test: Vec<Entry>,
}

fn find(root: &Path, suffix: &str) -> Result<PathBuf, DataError> {
    let dir = std::fs::read_dir(root).map_err(|e| DataError::io(root, e))?;
    let mut hits: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    hits.sort();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(DataError::layout(
            root,
            format!("no *{suffix} file: not a ModelNet-normal folder"),
        )),
        _ => Err(DataError::layout(
            root,
            format!("several *{suffix} files: {hits:?}"),
        )),
    }
}

fn lines(path: &Path) -> Result<Vec<(usize, String)>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

impl ModelNetNormal {
    /// Reads the index of a folder; every listed shape file must exist.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        let names = find(root, "_shape_names.txt")?;
        let classes: Vec<String> = lines(&names)?.into_iter().map(|(_, l)| l).collect();
        if classes.is_empty() {
            return Err(DataError::layout(&names, "no class names"));
        }
        let split = |suffix: &str| -> Result<Vec<Entry>, DataError> {
            let file = find(root, suffix)?;
            lines(&file)?
                .into_iter()
                .map(|(lineno, id)| {
                    let class =
                        id.rsplit_once('_')
                            .map(|(c, _)| c.to_string())
                            .ok_or_else(|| {
                                DataError::parse(
                                    &file,
                                    lineno,
                                    format!("shape id {id:?} has no _NNNN suffix"),
                                )
                            })?;
                    let label = classes.iter().position(|c| *c == class).ok_or_else(|| {
                        DataError::parse(
                            &file,
                            lineno,
                            format!("class {class:?} is not in the shape names"),
                        )
                    })?;
                    let path = root.join(&class).join(format!("{id}.txt"));
                    if !path.is_file() {
                        return Err(DataError::parse(
                            &file,
                            lineno,
                            format!("shape file {} is missing", path.display()),
                        ));
                    }
                    Ok(Entry {
                        id,
                        label: label as u32,
                        path,
                    })
                })
                .collect()
        };
        Ok(Self {
            train: split("_train.txt")?,
            test: split("_test.txt")?,
            classes,
        })
    }

    /// The entries of a split.
    pub fn entries(&self, split: Split) -> &[Entry] {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Reads one shape.
    pub fn load(&self, entry: &Entry) -> Result<Shape, DataError> {
        read_point_set(&entry.path, Columns::Normals, entry.label)
    }
}

/// Provenance file that `tensor-frames data convert` writes next to the split files: one line
/// per shape with its source mesh and the orientation of the mesh's components (see
/// [`read_sources`]).
pub const SOURCES_FILE: &str = "sources.tsv";

/// Where a converted shape came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `train` or `test`.
    pub split: String,
    /// The mesh, relative to the converted folder.
    pub mesh: String,
    /// How its components were oriented before sampling.
    pub orientation: Orientation,
}

impl Source {
    /// True when the mesh has an outside: every component is consistently wound and encloses
    /// volume (open ones by the volume convention), so "outward" normals are defined.
    pub fn has_outside(&self) -> bool {
        let o = &self.orientation;
        o.undefined == 0 && o.closed + o.open > 0
    }
}

/// Reads the [`SOURCES_FILE`] of a converted folder, keyed by shape id; `None` when there is
/// none (data not made by `data convert`).
pub fn read_sources(root: &Path) -> Result<Option<BTreeMap<String, Source>>, DataError> {
    let path = root.join(SOURCES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let count = |i: usize| -> Result<usize, DataError> {
            f[i].trim().parse().map_err(|_| {
                DataError::parse(
                    &path,
                    n + 1,
                    format!("column {} is not a count: {:?}", i + 1, f[i]),
                )
            })
        };
        if f.len() != 7 {
            return Err(DataError::parse(
                &path,
                n + 1,
                format!("expected 7 tab-separated columns, got {}", f.len()),
            ));
        }
        let orientation = Orientation {
            closed: count(3)?,
            open: count(4)?,
            flipped: count(5)?,
            undefined: count(6)?,
        };
        let source = Source {
            split: f[1].to_string(),
            mesh: f[2].to_string(),
            orientation,
        };
        if out.insert(f[0].to_string(), source).is_some() {
            return Err(DataError::parse(
                &path,
                n + 1,
                format!("duplicate id {}", f[0]),
            ));
        }
    }
    Ok(Some(out))
}

/// Writes shapes in this layout (class folders, split files, shape names), e.g. the synthetic
/// set for other tools. Shape ids are `<class>_<NNNN>` numbered per class; they are returned in
/// order (`train`, then `test`).
pub fn write_modelnet_normal(
    root: &Path,
    prefix: &str,
    classes: &[&str],
    train: &[Shape],
    test: &[Shape],
) -> Result<Vec<String>, DataError> {
    use std::fmt::Write as _;
    let io = |p: &Path, e| DataError::io(p, e);
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let names = root.join(format!("{prefix}_shape_names.txt"));
    std::fs::write(&names, classes.join("\n") + "\n").map_err(|e| io(&names, e))?;
    let mut counters = vec![0usize; classes.len()];
    let mut ids = Vec::with_capacity(train.len() + test.len());
    for (split, shapes) in [("train", train), ("test", test)] {
        let mut index = String::new();
        for s in shapes {
            let class = classes.get(s.label as usize).ok_or_else(|| {
                DataError::layout(root, format!("label {} has no class name", s.label))
            })?;
            counters[s.label as usize] += 1;
            let id = format!("{class}_{:04}", counters[s.label as usize]);
            let dir = root.join(class);
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let mut text = String::with_capacity(s.len() * 64);
            for (p, n) in s.points.chunks_exact(3).zip(s.normals.chunks_exact(3)) {
                let _ = writeln!(
                    text,
                    "{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}",
                    p[0], p[1], p[2], n[0], n[1], n[2]
                );
            }
            let file = dir.join(format!("{id}.txt"));
            std::fs::write(&file, text).map_err(|e| io(&file, e))?;
            index.push_str(&id);
            index.push('\n');
            ids.push(id);
        }
        let file = root.join(format!("{prefix}_{split}.txt"));
        std::fs::write(&file, index).map_err(|e| io(&file, e))?;
    }
    Ok(ids)
}
