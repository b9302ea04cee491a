//! Classical point-cloud geometry for tensor frames: PCA normals, their orientation, and the
//! equivariant per-point input features a model can ask the data pipeline for.
//!
//! None of this is learned and none of it needs frames; it is the classical estimate that the
//! bundled normal model refines, the baseline the normal experiments compare against, and the
//! PCA solver the PCA frames use.
//!
//! - [`pca_normals`], [`pca_fit`]: the normal of each point's `k` nearest neighbours (least
//!   variance axis), signed away from the centroid, and its surface variation.
//! - Orientation post-processes for any normal field: neighbour consensus
//!   ([`orientation_consensus`]), repair by the winding number of the cloud
//!   ([`orient_by_winding`]), and signing by which side of the surface rays can leave the cloud
//!   from ([`orient_by_visibility`]).
//! - [`InputFeatures`]: multi-scale PCA normals, variations and optional scores, computed on the
//!   whole cloud before a model draws its subset, with the rep they transform under.
//! - [`Scatter`]: the scatter matrix and eigen-decomposition behind every PCA fit.
//!
//! Every function is O(d)-equivariant and translation invariant in any dimension `d >= 2`
//! (normals transform as vectors), which the property tests check in f64.
//!
//! # Example
//! ```
//! use tf_normals::{orient_by_winding, pca_normals, WindingOrientation};
//!
//! # fn main() -> candle_core::Result<()> {
//! // 400 points on the unit circle (d = 2): PCA normals are radial.
//! let n = 400;
//! let points: Vec<f64> = (0..n)
//!     .flat_map(|i| {
//!         let t = i as f64 / n as f64 * std::f64::consts::TAU;
//!         [t.cos(), t.sin()]
//!     })
//!     .collect();
//! let mut normals = pca_normals(&points, 2, 8)?;
//! orient_by_winding(&points, &mut normals, 2, &WindingOrientation::default())?;
//! let outward = points.chunks(2).zip(normals.chunks(2)).all(|(p, v)| p[0] * v[0] + p[1] * v[1] > 0.99);
//! assert!(outward);
//! # Ok(())
//! # }
//! ```

mod features;
mod normals;
mod orientation;
mod scatter;
mod visibility;

pub use features::{InputFeatures, PcaOrientation};
pub use normals::{pca_fit, pca_normals};
pub use orientation::{
    orient_by_winding, orientation_consensus, winding_agreement, WindingOrientation,
};
pub use scatter::{PrincipalAxes, Scatter};
pub use visibility::{orient_by_visibility, visibility_scores, VisibilityOrientation};
