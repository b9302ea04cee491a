//! Point-cloud datasets for tensor frames.
//!
//! - [`Synthetic`]: the embedded default, procedurally generated shapes with exact normals,
//!   class and part labels, deterministic from a seed (10 classes; see [`synthetic`] for how it
//!   differs from ModelNet40).
//! - [`read_point_set`]: `x y z nx ny nz [part]` text files (`.xyz`, `.pwn`, ModelNet's `.txt`).
//! - [`ModelNetNormal`]: the ModelNet40 "normal resampled" layout (class folders, split files,
//!   shape names), read lazily; [`write_modelnet_normal`] writes any shapes in that layout.
//!
//! - [`ShapeNetParts`]: the ShapeNet part-segmentation layout (synset folders, JSON split lists).
//! - [`read_mesh`]: OFF, OBJ, STL (ASCII/binary), PLY (ASCII/binary), optionally gzipped;
//!   [`Mesh::sample`] draws area-uniform points with face or interpolated vertex normals.
//! - [`make_batch`], [`Loader`]: shapes -> disjoint-graph batches with fixed-size point
//!   sampling, random O(d) rotations/reflections and translations, a seeded order, and the next
//!   batch prepared on a background thread.
//!
//! Every error names the file, and the line where there is one ([`DataError`]).
//!
//! # Example
//! ```
//! use tf_datasets::{Split, Synthetic, SYNTHETIC_CLASS_NAMES};
//!
//! let data = Synthetic { shapes_per_class: 2, points: 256, noise: 0.0, warp: 0.0, seed: 7 };
//! let shape = data.shape(Split::Train, 3);
//! assert_eq!(SYNTHETIC_CLASS_NAMES[shape.label as usize], "box");
//! assert_eq!(shape.len(), 256);
//! ```

mod batch;
mod cloud;
mod convert;
mod error;
mod mesh;
mod modelnet;
mod nbody;
pub mod npy;
mod orient;
mod pointset;
mod shape;
mod shapenet;
pub mod synthetic;
mod synthetic_nd;

pub use batch::{
    make_batch, Augment, BatchConfig, InMemory, LabelledBatch, Loader, ModelNetSplit, ShapeSource,
    SyntheticNdSplit, SyntheticSplit,
};
pub use cloud::{
    parse_pcd, read_las, read_npy_points, read_pcd, write_cloud, CloudFormat, CloudRef, Extras,
};
pub use convert::{
    class_of, convert_meshes, in_test_split, mesh_files, ConvertOptions, ConvertReport,
};
pub use error::DataError;
pub use mesh::{
    is_mesh_path, read_mesh, read_ply_cloud, read_ply_points, Mesh, MeshNormals, PlyCloud,
    MAX_DECOMPRESSED_ENV, MESH_EXTENSIONS,
};
pub use modelnet::{
    read_sources, write_modelnet_normal, Entry, ModelNetNormal, Source, SOURCES_FILE,
};
pub use nbody::{published_name, read_published, ChargedNBody, Trajectory};
pub use orient::Orientation;
pub use pointset::{
    read_point_set, read_points, read_points_with, read_text_cloud, Columns, TextCloud,
    TextColumns, MAX_LINE_BYTES,
};
pub use shape::Shape;
pub use shapenet::{ShapeNetEntry, ShapeNetParts, ShapeNetSplit};
pub use synthetic::{
    Split, Synthetic, Warp, GENERATOR_VERSION, SYNTHETIC_CLASSES, SYNTHETIC_CLASS_NAMES,
};
pub use synthetic_nd::{SyntheticNd, SYNTHETIC_ND_CLASSES};
