//! A uniform cell grid for radius queries in any dimension.
//!
//! Why not a KD-tree crate: the dimension `d` is a runtime value in this library, while the
//! well-kept KD-tree crates fix it at compile time. A cell grid with cell size `r` answers a
//! radius-`r` query by scanning the `3^d` cells around the query point, so building costs
//! `O(N log N)` (points sorted by cell) and a query `O(3^d log N + m)` for `m` candidates at
//! bounded density. Good for the low dimensions of point clouds (d <= 6); in high d the `3^d`
//! factor dominates and a brute-force scan is used instead.

/// Above this dimension the grid scans all points (3^d cells would outnumber them).
const MAX_GRID_DIM: usize = 6;

/// Points of one graph bucketed by integer cell coordinates.
#[derive(Debug)]
pub(crate) struct CellGrid<'a> {
    pos: &'a [f64],
    d: usize,
    cell: f64,
    origin: Vec<f64>,
    /// `(cell key, point index)` sorted by key, then index.
    entries: Vec<(Vec<i64>, u32)>,
    brute: bool,
}

impl<'a> CellGrid<'a> {
    /// Buckets `pos` (row-major `(n, d)`) into cells of side `cell > 0`.
    pub(crate) fn new(pos: &'a [f64], d: usize, cell: f64) -> Self {
        let n = pos.len() / d;
        let mut origin = vec![f64::INFINITY; d];
        for p in pos.chunks_exact(d) {
            for (o, &v) in origin.iter_mut().zip(p) {
                *o = o.min(v);
            }
        }
        let brute = d > MAX_GRID_DIM || !(cell.is_finite() && cell > 0.0);
        let mut grid = Self {
            pos,
            d,
            cell,
            origin,
            entries: Vec::new(),
            brute,
        };
        if !grid.brute {
            grid.entries = (0..n as u32)
                .map(|i| (grid.key(grid.point(i as usize)), i))
                .collect();
            grid.entries.sort_unstable();
        }
        grid
    }

    fn point(&self, i: usize) -> &[f64] {
        &self.pos[i * self.d..(i + 1) * self.d]
    }

    fn key(&self, p: &[f64]) -> Vec<i64> {
        p.iter()
            .zip(&self.origin)
            .map(|(&v, &o)| ((v - o) / self.cell).floor() as i64)
            .collect()
    }

    /// Squared distance between a query and point `j`.
    pub(crate) fn dist2(&self, q: &[f64], j: usize) -> f64 {
        q.iter()
            .zip(self.point(j))
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    }

    /// Calls `f(j, dist2)` for every point within distance `r <= cell` of `q` (inclusive).
    pub(crate) fn within(&self, q: &[f64], r: f64, mut f: impl FnMut(u32, f64)) {
        let r2 = r * r;
        let n = self.pos.len() / self.d;
        if self.brute || r > self.cell {
            for j in 0..n {
                let d2 = self.dist2(q, j);
                if d2 <= r2 {
                    f(j as u32, d2);
                }
            }
            return;
        }
        let center = self.key(q);
        let mut offset = vec![-1i64; self.d];
        loop {
            let key: Vec<i64> = center.iter().zip(&offset).map(|(c, o)| c + o).collect();
            let start = self.entries.partition_point(|e| e.0 < key);
            for (k, j) in &self.entries[start..] {
                if *k != key {
                    break;
                }
                let d2 = self.dist2(q, *j as usize);
                if d2 <= r2 {
                    f(*j, d2);
                }
            }
            // odometer over {-1, 0, 1}^d
            let mut axis = 0;
            loop {
                if axis == self.d {
                    return;
                }
                offset[axis] += 1;
                if offset[axis] <= 1 {
                    break;
                }
                offset[axis] = -1;
                axis += 1;
            }
        }
    }
}
