//! A uniform cell grid for radius queries in any dimension.
//!
//! Why not a KD-tree crate: the dimension `d` is a runtime value in this library, while the
//! well-kept KD-tree crates fix it at compile time. A cell grid with cell size `r` answers a
//! radius-`r` query by scanning the `3^d` cells around the query point, found as `3^(d-1)`
//! runs of consecutive keys along the first axis: building costs `O(N log N)` (points sorted
//! by a linear cell key) and a query `O(3^(d-1) log N + m)` for `m` candidates at bounded
//! density. Good for the low dimensions of point clouds (d <= 6); above
//! that, or when the grid would need more than 2^62 cells, a brute-force scan is used.

/// Above this dimension the grid scans all points (3^d cells would outnumber them).
const MAX_GRID_DIM: usize = 6;

/// Per-axis minimum and maximum of row-major `(n, d)` points (infinite for no points).
pub(crate) fn bounding_box(pts: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for p in pts.chunks_exact(d) {
        for a in 0..d {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    (lo, hi)
}

/// Largest side of the bounding box (0 for fewer than two distinct points).
pub(crate) fn extent(pts: &[f64], d: usize) -> f64 {
    let (lo, hi) = bounding_box(pts, d);
    lo.iter().zip(&hi).map(|(a, b)| b - a).fold(0.0, f64::max)
}

/// Calls `f(j, dist2)` for the points `block` (row-major `(n, d)`, indices `ids`) within
/// squared distance `r2` of `q`; always inlined, so that a literal `d` propagates.
#[inline(always)]
fn scan(block: &[f64], ids: &[u32], q: &[f64], d: usize, r2: f64, f: &mut impl FnMut(u32, f64)) {
    let q = &q[..d];
    for (p, &j) in block.chunks_exact(d).zip(ids) {
        let d2: f64 = q.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
        if d2 <= r2 {
            f(j, d2);
        }
    }
}

/// Points of one graph bucketed by cell, sorted by linear cell key.
#[derive(Debug)]
pub(crate) struct CellGrid<'a> {
    pos: &'a [f64],
    d: usize,
    cell: f64,
    origin: Vec<f64>,
    /// Cells per axis.
    dims: Vec<i64>,
    /// Linear key strides per axis.
    strides: Vec<u64>,
    /// Sorted linear cell keys, and the point of each entry.
    keys: Vec<u64>,
    ids: Vec<u32>,
    /// The points' coordinates in entry order, so a cell's points are read contiguously
    /// (through `ids` they were scattered over the whole cloud).
    sorted: Vec<f64>,
    /// Where each cell's entries start, `starts[key]..starts[key + 1]`, when the key space is
    /// small enough to index directly (at most [`DENSE_CELLS_PER_POINT`] cells per point);
    /// otherwise empty and a cell is found by binary search in `keys`.
    starts: Vec<u32>,
    brute: bool,
}

/// Largest cells-to-points ratio for which the grid keeps a direct cell index: a query then
/// finds each cell in O(1) instead of a binary search over all keys, for at most a few u32
/// per point of memory.
const DENSE_CELLS_PER_POINT: u64 = 8;

impl<'a> CellGrid<'a> {
    /// Buckets `pos` (row-major `(n, d)`) into cells of side `cell > 0`.
    pub(crate) fn new(pos: &'a [f64], d: usize, cell: f64) -> Self {
        let n = pos.len() / d;
        let (lo, hi) = bounding_box(pos, d);
        let mut grid = Self {
            pos,
            d,
            cell,
            origin: lo.clone(),
            dims: Vec::new(),
            strides: Vec::new(),
            keys: Vec::new(),
            ids: Vec::new(),
            sorted: Vec::new(),
            starts: Vec::new(),
            brute: true,
        };
        if n == 0 || d > MAX_GRID_DIM || !(cell.is_finite() && cell > 0.0) {
            return grid;
        }
        // Cells per axis; give up on the grid if the key space would overflow.
        let mut total: u64 = 1;
        for a in 0..d {
            let cells = ((hi[a] - lo[a]) / cell).floor() + 1.0;
            if !(cells.is_finite() && cells < 1e15) {
                return grid;
            }
            grid.strides.push(total);
            grid.dims.push(cells as i64);
            total = match total.checked_mul(cells as u64) {
                Some(t) if t < 1 << 62 => t,
                _ => return grid,
            };
        }
        grid.brute = false;
        let mut entries: Vec<(u64, u32)> = (0..n)
            .map(|i| {
                let mut c = [0i64; MAX_GRID_DIM];
                grid.coords(&pos[i * d..(i + 1) * d], &mut c);
                (grid.linear(&c), i as u32)
            })
            .collect();
        entries.sort_unstable();
        grid.keys = entries.iter().map(|e| e.0).collect();
        grid.ids = entries.iter().map(|e| e.1).collect();
        grid.sorted = grid
            .ids
            .iter()
            .flat_map(|&j| pos[j as usize * d..(j as usize + 1) * d].iter().copied())
            .collect();
        if total <= DENSE_CELLS_PER_POINT * n as u64 && n < u32::MAX as usize {
            let mut starts = vec![0u32; total as usize + 1];
            for &k in &grid.keys {
                starts[k as usize + 1] += 1;
            }
            for c in 0..total as usize {
                starts[c + 1] += starts[c];
            }
            grid.starts = starts;
        }
        grid
    }

    fn coords(&self, p: &[f64], out: &mut [i64; MAX_GRID_DIM]) {
        for a in 0..self.d {
            out[a] = ((p[a] - self.origin[a]) / self.cell).floor() as i64;
        }
    }

    fn linear(&self, c: &[i64; MAX_GRID_DIM]) -> u64 {
        (0..self.d).map(|a| c[a] as u64 * self.strides[a]).sum()
    }

    /// The cell side.
    pub(crate) fn cell(&self) -> f64 {
        self.cell
    }

    /// Number of points.
    pub(crate) fn len(&self) -> usize {
        self.pos.len() / self.d
    }

    /// Squared distance between a query and point `j`.
    fn dist2(&self, q: &[f64], j: usize) -> f64 {
        let p = &self.pos[j * self.d..(j + 1) * self.d];
        q.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum()
    }

    /// Calls `f(j, dist2)` for every point within distance `r` of `q` (inclusive). A radius
    /// above the cell side scans `ceil(r / cell)` rings of cells, or every point when that
    /// would visit more cells than there are points.
    pub(crate) fn within(&self, q: &[f64], r: f64, mut f: impl FnMut(u32, f64)) {
        let r2 = r * r;
        let n = self.pos.len() / self.d;
        let rings = if self.brute || !r.is_finite() {
            None
        } else {
            let rings = (r / self.cell).ceil().max(1.0);
            let cells = (2.0 * rings + 1.0).powi(self.d as i32);
            (cells <= n.max(27) as f64).then_some(rings as i64)
        };
        let Some(rings) = rings else {
            for j in 0..n {
                let d2 = self.dist2(q, j);
                if d2 <= r2 {
                    f(j as u32, d2);
                }
            }
            return;
        };
        let mut center = [0i64; MAX_GRID_DIM];
        self.coords(q, &mut center);
        // Axis 0 has stride 1, so a row of cells along it is one run of keys, and so of
        // entries: one lookup per row instead of one per cell (the lookups, not the distances,
        // were most of a kNN query's time). The points come in the same order as cell by cell.
        let x_lo = (center[0] - rings).max(0);
        let x_hi = (center[0] + rings).min(self.dims[0] - 1);
        if x_lo > x_hi {
            return;
        }
        let mut offset = [-rings; MAX_GRID_DIM];
        let mut cell = [0i64; MAX_GRID_DIM];
        cell[0] = x_lo;
        loop {
            let mut inside = true;
            for a in 1..self.d {
                cell[a] = center[a] + offset[a];
                inside &= cell[a] >= 0 && cell[a] < self.dims[a];
            }
            if inside {
                let key = self.linear(&cell);
                let last = key + (x_hi - x_lo) as u64;
                let (start, end) = if self.starts.is_empty() {
                    let start = self.keys.partition_point(|&k| k < key);
                    let len = self.keys[start..].partition_point(|&k| k <= last);
                    (start, start + len)
                } else {
                    (
                        self.starts[key as usize] as usize,
                        self.starts[last as usize + 1] as usize,
                    )
                };
                let d = self.d;
                let (block, ids) = (&self.sorted[start * d..end * d], &self.ids[start..end]);
                // The same sum in the same order as `dist2`: identical distances. Point clouds
                // are 3D: a literal `d` unrolls the sum, which otherwise was a loop per point.
                if d == 3 {
                    scan(block, ids, q, 3, r2, &mut f);
                } else {
                    scan(block, ids, q, d, r2, &mut f);
                }
            }
            // odometer over {-rings, ..., rings}^(d - 1), the axes after the first
            let mut axis = 1;
            loop {
                if axis >= self.d {
                    return;
                }
                offset[axis] += 1;
                if offset[axis] <= rings {
                    break;
                }
                offset[axis] = -rings;
                axis += 1;
            }
        }
    }
}
