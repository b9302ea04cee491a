//! Consistent outward orientation of meshes.
//!
//! Face normals follow the winding of each triangle, and real mesh collections contain meshes
//! (and parts of meshes) wound inside out, with every normal pointing inward. Ground truth for *oriented* normals must point outward, so before sampling, every
//! consistently wound connected component whose signed volume (about its own centroid) is
//! negative has its triangles reversed. For a closed component this is exact; for an open one
//! (a scan open at the neck, a curved patch) it is the usual convention: outward is the side
//! that encloses positive volume. Components with inconsistent winding or no volume (a single
//! flat triangle) have no defined outside and are left as they are; [`Orientation`] counts
//! each case.

use std::collections::HashMap;

use crate::mesh::Mesh;

/// What [`Mesh::orient_outward`] found, in connected components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Orientation {
    /// Closed, consistently wound components.
    pub closed: usize,
    /// Open, consistently wound components (oriented by the volume convention).
    pub open: usize,
    /// Of the two, components that were inside out and got reversed.
    pub flipped: usize,
    /// Components left as they are: inconsistently wound, or enclosing no volume.
    pub undefined: usize,
}

impl Mesh {
    /// Reverses every closed, consistently wound component that encloses negative volume (see
    /// the module docs). Vertices are matched by position, so meshes that duplicate vertices
    /// per face (STL, many VRML files) are handled.
    pub fn orient_outward(&mut self) -> Orientation {
        // Weld vertices by exact position.
        let mut ids: HashMap<[u64; 3], u32> = HashMap::new();
        let weld: Vec<u32> = self
            .vertices
            .iter()
            .map(|v| {
                let key = v.map(|x| (x + 0.0).to_bits()); // -0.0 and 0.0 are one point
                let next = ids.len() as u32;
                *ids.entry(key).or_insert(next)
            })
            .collect();
        let tris: Vec<[u32; 3]> = self
            .triangles
            .iter()
            .map(|t| t.map(|i| weld[i as usize]))
            .filter(|t| t[0] != t[1] && t[1] != t[2] && t[0] != t[2])
            .collect();
        let keep: Vec<usize> = self
            .triangles
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                let w = t.map(|i| weld[i as usize]);
                w[0] != w[1] && w[1] != w[2] && w[0] != w[2]
            })
            .map(|(i, _)| i)
            .collect();
        // Components: union-find over welded vertices.
        let mut parent: Vec<u32> = (0..ids.len() as u32).collect();
        fn find(p: &mut [u32], mut x: u32) -> u32 {
            while p[x as usize] != x {
                p[x as usize] = p[p[x as usize] as usize];
                x = p[x as usize];
            }
            x
        }
        for t in &tris {
            for k in 1..3 {
                let (a, b) = (find(&mut parent, t[0]), find(&mut parent, t[k]));
                if a != b {
                    parent[a as usize] = b;
                }
            }
        }
        // Per component: directed edge counts (closed and consistent <=> every directed edge
        // once and its reverse once) and the signed volume.
        let mut comp_of: HashMap<u32, usize> = HashMap::new();
        let mut tri_comp = Vec::with_capacity(tris.len());
        for t in &tris {
            let root = find(&mut parent, t[0]);
            let next = comp_of.len();
            tri_comp.push(*comp_of.entry(root).or_insert(next));
        }
        let n_comp = comp_of.len();
        let mut edges: Vec<HashMap<(u32, u32), u32>> = vec![HashMap::new(); n_comp];
        let mut volume = vec![0.0f64; n_comp];
        let mut scale = vec![0.0f64; n_comp];
        let pos: Vec<[f64; 3]> = {
            let mut p = vec![[0.0; 3]; ids.len()];
            for (v, &w) in self.vertices.iter().zip(&weld) {
                p[w as usize] = *v;
            }
            p
        };
        // Centroid of each component's vertices: the signed volume of an open surface depends
        // on the origin; about its own centroid it is a property of the surface.
        let mut centre = vec![([0.0f64; 3], 0usize); n_comp];
        for (t, &c) in tris.iter().zip(&tri_comp) {
            for &v in t {
                for (acc, x) in centre[c].0.iter_mut().zip(pos[v as usize]) {
                    *acc += x;
                }
                centre[c].1 += 1;
            }
        }
        for (t, &c) in tris.iter().zip(&tri_comp) {
            for k in 0..3 {
                *edges[c].entry((t[k], t[(k + 1) % 3])).or_insert(0) += 1;
            }
            let m = centre[c].0.map(|x| x / centre[c].1 as f64);
            let [a, b, d] = t.map(|i| {
                let p = pos[i as usize];
                [p[0] - m[0], p[1] - m[1], p[2] - m[2]]
            });
            volume[c] += a[0] * (b[1] * d[2] - b[2] * d[1]) - a[1] * (b[0] * d[2] - b[2] * d[0])
                + a[2] * (b[0] * d[1] - b[1] * d[0]);
            scale[c] = [a, b, d]
                .iter()
                .flatten()
                .fold(scale[c], |s, x| s.max(x.abs()));
        }
        let mut report = Orientation::default();
        let mut flip = vec![false; n_comp];
        for c in 0..n_comp {
            let consistent = edges[c].values().all(|&n| n == 1);
            let closed = consistent
                && edges[c]
                    .keys()
                    .all(|&(a, b)| edges[c].contains_key(&(b, a)));
            // A volume below round-off of the component's size is no volume (flat patches).
            let tiny = 1e-9 * scale[c].powi(3) * edges[c].len() as f64;
            if !consistent || volume[c].abs() <= tiny {
                report.undefined += 1;
                continue;
            }
            if closed {
                report.closed += 1;
            } else {
                report.open += 1;
            }
            if volume[c] < 0.0 {
                flip[c] = true;
                report.flipped += 1;
            }
        }
        for (&i, &c) in keep.iter().zip(&tri_comp) {
            if flip[c] {
                self.triangles[i].swap(1, 2);
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit cube as 12 outward-wound triangles, shifted by `o`.
    fn cube(o: f64) -> Mesh {
        let v: Vec<[f64; 3]> = (0..8)
            .map(|i| {
                [
                    (i & 1) as f64 + o,
                    ((i >> 1) & 1) as f64,
                    ((i >> 2) & 1) as f64,
                ]
            })
            .collect();
        let quads = [
            [0, 2, 3, 1],
            [4, 5, 7, 6],
            [0, 1, 5, 4],
            [2, 6, 7, 3],
            [0, 4, 6, 2],
            [1, 3, 7, 5],
        ];
        let triangles = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        Mesh {
            vertices: v,
            triangles,
        }
    }

    fn outward_fraction(m: &Mesh) -> f64 {
        let s = m
            .sample(
                500,
                crate::MeshNormals::Face,
                0.0,
                0,
                &mut rand::SeedableRng::seed_from_u64(1),
            )
            .unwrap();
        let n = s.len();
        // Outward from the centre of the unit cube the point lies on (cubes sit at x = 0 or 3).
        (0..n)
            .filter(|&i| {
                let p = &s.points[3 * i..3 * i + 3];
                let c = [if p[0] < 2.0 { 0.5 } else { 3.5 }, 0.5, 0.5];
                (0..3)
                    .map(|k| (p[k] - c[k]) * s.normals[3 * i + k])
                    .sum::<f64>()
                    > 0.0
            })
            .count() as f64
            / n as f64
    }

    #[test]
    fn inside_out_components_are_reversed_and_open_ones_kept() {
        let mut good = cube(0.0);
        assert_eq!(outward_fraction(&good), 1.0);
        assert_eq!(
            good.orient_outward(),
            Orientation {
                closed: 1,
                ..Default::default()
            }
        );
        // Two cubes, one inside out, with duplicated vertices (as in STL files).
        let mut bad = cube(0.0);
        bad.triangles.iter_mut().for_each(|t| t.swap(0, 1));
        let other = cube(3.0);
        let off = bad.vertices.len() as u32;
        bad.vertices.extend(other.vertices);
        bad.triangles
            .extend(other.triangles.iter().map(|t| t.map(|i| i + off)));
        let dup: Vec<[f64; 3]> = bad.vertices.clone();
        let n = dup.len() as u32;
        bad.vertices.extend(dup);
        for t in bad.triangles.iter_mut().skip(6) {
            *t = t.map(|i| i + n); // half the faces use the duplicated vertices
        }
        assert!(outward_fraction(&bad) < 0.6);
        let r = bad.orient_outward();
        assert_eq!((r.closed, r.flipped, r.open), (2, 1, 0));
        assert_eq!(outward_fraction(&bad), 1.0);
        // An inside-out open box (one face removed) is oriented by the volume convention.
        let mut open = cube(0.0);
        open.triangles.truncate(10);
        open.triangles.iter_mut().for_each(|t| t.swap(0, 1));
        let r = open.orient_outward();
        assert_eq!((r.open, r.flipped), (1, 1));
        assert_eq!(outward_fraction(&open), 1.0);
        // A single flat triangle, and inconsistent winding, have no outside: left alone.
        let mut flat = Mesh {
            vertices: vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            triangles: vec![[0, 1, 2]],
        };
        assert_eq!(flat.orient_outward().undefined, 1);
        assert_eq!(flat.triangles, vec![[0, 1, 2]]);
        let mut mixed = cube(0.0);
        mixed.triangles[0].swap(0, 1);
        let before = mixed.clone();
        assert_eq!(mixed.orient_outward().undefined, 1);
        assert_eq!(mixed, before);
    }
}
