//! One labelled point cloud with unit normals.

/// A shape: `n` points in dimension `d` with unit normals, a class label and optional part
/// labels per point. Row-major `(n, d)` buffers, f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Dimension.
    pub d: usize,
    /// Positions, row-major `(n, d)`.
    pub points: Vec<f64>,
    /// Unit normals, row-major `(n, d)`.
    pub normals: Vec<f64>,
    /// Class index.
    pub label: u32,
    /// Part index per point, if known.
    pub parts: Option<Vec<u32>>,
}

impl Shape {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len() / self.d.max(1)
    }

    /// True without points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Centres the shape at its centroid and scales it into the unit ball (normals unchanged):
    /// the normalisation ModelNet40 pipelines apply before training.
    pub fn normalize(&mut self) {
        let (n, d) = (self.len(), self.d);
        if n == 0 {
            return;
        }
        let mut c = vec![0.0; d];
        for p in self.points.chunks_exact(d) {
            c.iter_mut().zip(p).for_each(|(a, b)| *a += b / n as f64);
        }
        let mut r: f64 = 0.0;
        for p in self.points.chunks_exact_mut(d) {
            p.iter_mut().zip(&c).for_each(|(a, b)| *a -= b);
            r = r.max(p.iter().map(|v| v * v).sum::<f64>().sqrt());
        }
        if r > 0.0 {
            self.points.iter_mut().for_each(|v| *v /= r);
        }
    }
}
