//! The ShapeNet part-segmentation layout with normals (as distributed with PointNet++):
//!
//! ```text
//! root/
//!   synsetoffset2category.txt          "Airplane<TAB>02691156" per line (label = line index)
//!   train_test_split/shuffled_{train,val,test}_file_list.json
//!                                      ["shape_data/02691156/1021a09...", ...]
//!   02691156/1021a09....txt            x y z nx ny nz part per line
//! ```
//!
//! Opening reads the index only; shapes are read one at a time.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::pointset::{read_point_set, Columns};
use crate::shape::Shape;

/// Which list of the ShapeNet split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeNetSplit {
    /// `shuffled_train_file_list.json`
    Train,
    /// `shuffled_val_file_list.json`
    Val,
    /// `shuffled_test_file_list.json`
    Test,
}

/// One shape of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeNetEntry {
    /// Category label (line of `synsetoffset2category.txt`).
    pub label: u32,
    /// The point file.
    pub path: PathBuf,
}

/// An opened ShapeNet part-segmentation folder.
#[derive(Debug, Clone)]
pub struct ShapeNetParts {
    /// `(name, synset)` by label.
    pub categories: Vec<(String, String)>,
    root: PathBuf,
}

impl ShapeNetParts {
    /// Reads the category map.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        let file = root.join("synsetoffset2category.txt");
        let text = std::fs::read_to_string(&file).map_err(|e| DataError::io(&file, e))?;
        let mut categories = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let mut it = l.split_whitespace();
            match (it.next(), it.next()) {
                (Some(name), Some(synset)) => {
                    categories.push((name.to_string(), synset.to_string()))
                }
                (None, _) => {}
                _ => {
                    return Err(DataError::parse(
                        &file,
                        i + 1,
                        "expected a category name and a synset id",
                    ))
                }
            }
        }
        if categories.is_empty() {
            return Err(DataError::layout(&file, "no categories"));
        }
        Ok(Self {
            categories,
            root: root.to_path_buf(),
        })
    }

    /// The shapes of a split; every listed file must exist and belong to a known category.
    pub fn entries(&self, split: ShapeNetSplit) -> Result<Vec<ShapeNetEntry>, DataError> {
        let name = match split {
            ShapeNetSplit::Train => "train",
            ShapeNetSplit::Val => "val",
            ShapeNetSplit::Test => "test",
        };
        let file = self
            .root
            .join("train_test_split")
            .join(format!("shuffled_{name}_file_list.json"));
        let text = std::fs::read_to_string(&file).map_err(|e| DataError::io(&file, e))?;
        let list: Vec<String> = serde_json::from_str(&text).map_err(|e| {
            DataError::parse(
                &file,
                e.line(),
                format!("expected a JSON list of strings: {e}"),
            )
        })?;
        list.iter()
            .map(|item| {
                // "shape_data/<synset>/<id>"
                let mut parts = item.rsplit('/');
                let (Some(id), Some(synset)) = (parts.next(), parts.next()) else {
                    return Err(DataError::layout(
                        &file,
                        format!("entry {item:?} is not shape_data/<synset>/<id>"),
                    ));
                };
                let label = self
                    .categories
                    .iter()
                    .position(|(_, s)| s == synset)
                    .ok_or_else(|| {
                        DataError::layout(&file, format!("entry {item:?}: unknown synset {synset}"))
                    })?;
                let path = self.root.join(synset).join(format!("{id}.txt"));
                if !path.is_file() {
                    return Err(DataError::layout(
                        &file,
                        format!("entry {item:?}: {} is missing", path.display()),
                    ));
                }
                Ok(ShapeNetEntry {
                    label: label as u32,
                    path,
                })
            })
            .collect()
    }

    /// Reads one shape with its part labels.
    pub fn load(&self, entry: &ShapeNetEntry) -> Result<Shape, DataError> {
        read_point_set(&entry.path, Columns::NormalsAndPart, entry.label)
    }
}
