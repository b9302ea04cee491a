//! Graph construction against brute force, and reductions against naive references.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;
use tf_graphs::*;
use tf_testing::strategies::{self, features, PointCloud};
use tf_testing::{config, max_abs_diff, Kind, Transform};

fn edges(t: &Tensor) -> Vec<(u32, u32)> {
    let v = t.to_vec2::<u32>().unwrap();
    v[0].iter().copied().zip(v[1].iter().copied()).collect()
}

fn dist2(p: &[f64], d: usize, a: usize, b: usize) -> f64 {
    (0..d).map(|k| (p[a * d + k] - p[b * d + k]).powi(2)).sum()
}

/// Brute-force neighbour lists within graphs given by `sizes`, nearest first, ties by index.
fn brute(
    p: &[f64],
    d: usize,
    sizes: &[usize],
    keep: impl Fn(f64, usize) -> bool,
    cap: usize,
    self_loops: bool,
) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut start = 0;
    for &s in sizes {
        for i in start..start + s {
            let mut list: Vec<(f64, usize)> = (start..start + s)
                .filter(|&j| j != i || self_loops)
                .map(|j| (dist2(p, d, i, j), j))
                .collect();
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (rank, &(d2, j)) in list.iter().enumerate() {
                if rank < cap && keep(d2, rank) {
                    out.push((j as u32, i as u32));
                }
            }
        }
        start += s;
    }
    out
}

fn batch_tensor(sizes: &[usize]) -> Tensor {
    let ids: Vec<u32> = sizes
        .iter()
        .enumerate()
        .flat_map(|(g, &s)| std::iter::repeat_n(g as u32, s))
        .collect();
    Tensor::new(ids.as_slice(), &Device::Cpu).unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    d: usize,
    sizes: Vec<usize>,
    cloud: PointCloud,
}

fn case() -> impl Strategy<Value = Case> {
    (
        strategies::dim(),
        prop::collection::vec(0usize..40, 1..4),
        strategies::seed(),
    )
        .prop_map(|(d, sizes, seed)| {
            let n = sizes.iter().sum();
            Case {
                d,
                sizes,
                cloud: PointCloud::uniform(d, n, seed),
            }
        })
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn radius_graph_matches_brute_force(c in case(), radius in 0.2f64..1.5, cap in 1usize..20, self_loops in any::<bool>()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let b = batch_tensor(&c.sizes);
        let got = edges(&radius_graph(&pos, Some(&b), RadiusGraph { radius, max_neighbors: cap, self_loops }).unwrap());
        let want = brute(&c.cloud.coords, c.d, &c.sizes, |d2, _| d2 <= radius * radius, cap, self_loops);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn knn_graph_matches_brute_force(c in case(), k in 1usize..12, self_loops in any::<bool>()) {
        let pos = c.cloud.tensor(DType::F32, &Device::Cpu).unwrap();
        let b = batch_tensor(&c.sizes);
        let got = edges(&knn_graph(&pos, Some(&b), k, self_loops).unwrap());
        // compare against the f32-rounded coordinates the function saw
        let p: Vec<f64> = pos.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = brute(&p, c.d, &c.sizes, |_, _| true, k, self_loops);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn graphs_are_invariant_under_euclidean_transforms(c in case(), seed in strategies::seed()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let b = batch_tensor(&c.sizes);
        let opts = RadiusGraph { radius: 0.7, max_neighbors: 64, self_loops: false };
        let e0 = edges(&radius_graph(&pos, Some(&b), opts).unwrap());
        let k0 = edges(&knn_graph(&pos, Some(&b), 5, false).unwrap());
        for g in Transform::pair(c.d, seed) {
            let moved = g.apply(&Kind::Positions, &pos).unwrap();
            prop_assert_eq!(&edges(&radius_graph(&moved, Some(&b), opts).unwrap()), &e0);
            prop_assert_eq!(&edges(&knn_graph(&moved, Some(&b), 5, false).unwrap()), &k0);
        }
    }

    #[test]
    fn fps_picks_distinct_farthest_points(c in case(), ratio in 0.05f64..=1.0, seed in strategies::seed()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let b = batch_tensor(&c.sizes);
        for start in [FpsStart::First, FpsStart::Seeded(seed)] {
            let idx = farthest_point_sampling(&pos, Some(&b), ratio, start).unwrap().to_vec1::<u32>().unwrap();
            let again = farthest_point_sampling(&pos, Some(&b), ratio, start).unwrap().to_vec1::<u32>().unwrap();
            prop_assert_eq!(&idx, &again);
            let mut offset = 0;
            let mut cursor = 0;
            for &s in &c.sizes {
                let m = if s == 0 { 0 } else { ((ratio * s as f64).ceil() as usize).clamp(1, s) };
                let chosen = &idx[cursor..cursor + m];
                let mut sorted = chosen.to_vec();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), m, "duplicates in {:?}", chosen);
                prop_assert!(chosen.iter().all(|&i| (i as usize) >= offset && (i as usize) < offset + s));
                if start == FpsStart::First && m > 0 {
                    prop_assert_eq!(chosen[0] as usize, offset);
                }
                // greedy property: each pick is at least as far from earlier picks as any point
                for t in 1..m {
                    let dmin = |p: usize| chosen[..t].iter().map(|&q| dist2(&c.cloud.coords, c.d, p, q as usize)).fold(f64::INFINITY, f64::min);
                    let picked = dmin(chosen[t] as usize);
                    prop_assert!((offset..offset + s).all(|p| dmin(p) <= picked + 1e-12));
                }
                offset += s;
                cursor += m;
            }
        }
    }

    #[test]
    fn reductions_match_naive_reference(n in 1usize..12, e in 0usize..40, ch in 1usize..5, seed in strategies::seed()) {
        let src = features(e, ch, seed, DType::F64, &Device::Cpu).unwrap();
        let idx: Vec<u32> = (0..e).map(|k| (((k as u64 * 2654435761) ^ seed) % n as u64) as u32).collect();
        let index = Tensor::new(idx.as_slice(), &Device::Cpu).unwrap();
        let s = src.to_vec2::<f64>().unwrap_or_default();
        let (mut sum, mut max, mut cnt) = (vec![vec![0.0; ch]; n], vec![vec![f64::NEG_INFINITY; ch]; n], vec![0.0; n]);
        for (k, &i) in idx.iter().enumerate() {
            cnt[i as usize] += 1.0;
            for c in 0..ch {
                sum[i as usize][c] += s[k][c];
                max[i as usize][c] = f64::max(max[i as usize][c], s[k][c]);
            }
        }
        let mean: Vec<Vec<f64>> = sum.iter().zip(&cnt).map(|(r, &k)| r.iter().map(|v| if k > 0.0 { v / k } else { 0.0 }).collect()).collect();
        let max: Vec<Vec<f64>> = max.into_iter().map(|r| r.into_iter().map(|v| if v.is_finite() { v } else { 0.0 }).collect()).collect();
        let close = |a: &Tensor, b: &[Vec<f64>]| max_abs_diff(a, &Tensor::new(b.to_vec(), &Device::Cpu).unwrap()).unwrap() < 1e-12;
        prop_assert!(close(&scatter_sum(&src, &index, n).unwrap(), &sum));
        prop_assert!(close(&scatter_mean(&src, &index, n).unwrap(), &mean));
        prop_assert!(close(&scatter_max(&src, &index, n).unwrap(), &max));
        if e > 0 {
            let sm = scatter_softmax(&src, &index, n).unwrap();
            let per_node = scatter_sum(&sm, &index, n).unwrap().to_vec2::<f64>().unwrap();
            for (i, row) in per_node.iter().enumerate() {
                for &v in row {
                    let want = if cnt[i] > 0.0 { 1.0 } else { 0.0 };
                    prop_assert!((v - want).abs() < 1e-12, "softmax weights of node {} sum to {}", i, v);
                }
            }
        }
    }
}

#[test]
fn reductions_are_deterministic_and_differentiable() {
    let (n, e, ch) = (5, 30, 4);
    let src = Var::from_tensor(&features(e, ch, 3, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let idx: Vec<u32> = (0..e as u32).map(|k| (k * 7) % 4).collect(); // node 4 receives nothing
    let index = Tensor::new(idx.as_slice(), &Device::Cpu).unwrap();
    let w = features(n, ch, 4, DType::F64, &Device::Cpu).unwrap();
    let we = features(e, ch, 5, DType::F64, &Device::Cpu).unwrap();
    type Reduce = fn(&Tensor, &Tensor, usize) -> candle_core::Result<Tensor>;
    let ops: [(&str, Reduce); 3] = [
        ("sum", scatter_sum),
        ("mean", scatter_mean),
        ("max", scatter_max),
    ];
    let loss_of = |name: &str, x: &Tensor| -> f64 {
        let f = ops.iter().find(|o| o.0 == name).unwrap().1;
        (f(x, &index, n).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    for (name, f) in ops {
        let a = f(src.as_tensor(), &index, n).unwrap();
        let b = f(src.as_tensor(), &index, n).unwrap();
        assert_eq!(
            a.to_vec2::<f64>().unwrap(),
            b.to_vec2::<f64>().unwrap(),
            "{name} not deterministic"
        );
        assert_eq!(
            a.get(4).unwrap().to_vec1::<f64>().unwrap(),
            vec![0.0; ch],
            "{name}: empty segment"
        );
        let g = (a * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(src.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        let base = src.as_tensor().to_vec2::<f64>().unwrap();
        for (r, c) in [(0, 0), (3, 2), (17, 1)] {
            let bump = |h: f64| {
                let mut v = base.clone();
                v[r][c] += h;
                Tensor::new(v, &Device::Cpu).unwrap()
            };
            let fd = (loss_of(name, &bump(1e-6)) - loss_of(name, &bump(-1e-6))) / 2e-6;
            assert!(
                (fd - g[r][c]).abs() < 1e-6,
                "{name} grad ({r},{c}): {} vs {fd}",
                g[r][c]
            );
        }
    }
    // softmax gradient
    let sm = scatter_softmax(src.as_tensor(), &index, n).unwrap();
    let g = (sm * &we).unwrap().sum_all().unwrap().backward().unwrap();
    let g = g.get(src.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
    let base = src.as_tensor().to_vec2::<f64>().unwrap();
    let l = |x: Tensor| {
        (scatter_softmax(&x, &index, n).unwrap() * &we)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let mut plus = base.clone();
    plus[2][1] += 1e-6;
    let mut minus = base.clone();
    minus[2][1] -= 1e-6;
    let fd = (l(Tensor::new(plus, &Device::Cpu).unwrap())
        - l(Tensor::new(minus, &Device::Cpu).unwrap()))
        / 2e-6;
    assert!((fd - g[2][1]).abs() < 1e-6);
}

#[test]
fn degenerate_inputs_are_errors_or_handled() {
    let dev = Device::Cpu;
    // duplicate points: all at distance zero, graphs still well formed
    let pos = Tensor::zeros((6, 3), DType::F32, &dev).unwrap();
    let e = knn_graph(&pos, None, 3, false).unwrap();
    assert_eq!(e.dims(), &[2, 18]);
    let e = radius_graph(
        &pos,
        None,
        RadiusGraph {
            radius: 0.1,
            max_neighbors: 2,
            self_loops: false,
        },
    )
    .unwrap();
    assert_eq!(e.dims(), &[2, 12]);
    // empty cloud
    let empty = Tensor::zeros((0, 3), DType::F32, &dev).unwrap();
    assert_eq!(knn_graph(&empty, None, 3, false).unwrap().dims(), &[2, 0]);
    assert_eq!(
        farthest_point_sampling(&empty, None, 0.5, FpsStart::First)
            .unwrap()
            .dims(),
        &[0]
    );
    // bad inputs
    let nan = Tensor::new(&[[0.0f32, f32::INFINITY]], &dev).unwrap();
    assert!(knn_graph(&nan, None, 1, false).is_err());
    assert!(radius_graph(
        &pos,
        None,
        RadiusGraph {
            radius: -1.0,
            max_neighbors: 2,
            self_loops: false
        }
    )
    .is_err());
    assert!(farthest_point_sampling(&pos, None, 0.0, FpsStart::First).is_err());
    let src = Tensor::zeros((2, 1), DType::F32, &dev).unwrap();
    let bad = Tensor::new(&[0u32, 9], &dev).unwrap();
    assert!(scatter_sum(&src, &bad, 3)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
}

#[test]
fn knn_finds_far_corner_neighbours_in_high_dimension() {
    // 4114 points in a tiny cluster at the origin of [0, 1]^6 and one at the far corner. The
    // initial radius is then ~0.3 and doubles to 2.4, past 2 * extent + r0 but short of the
    // corner's distance sqrt(6) ~ 2.45: a search that stopped there would miss the cluster.
    let d = 6;
    let m = 4115;
    let mut coords: Vec<f64> = (0..(m - 1) * d)
        .map(|i| ((i * 7919) % 1000) as f64 * 1e-6)
        .collect();
    coords.extend(std::iter::repeat_n(1.0, d));
    let pos = Tensor::from_vec(coords, (m, d), &Device::Cpu).unwrap();
    let e = edges(&knn_graph(&pos, None, 2, false).unwrap());
    let far = (m - 1) as u32;
    assert_eq!(e.iter().filter(|(_, i)| *i == far).count(), 2);
}

/// Large 3D clouds pick their starting radius by sampling: a surface (the surface estimate
/// holds enough neighbours) and a solid cube with a dense cluster (it does not, and the
/// search widens by rings of cells). Both match brute force exactly.
#[test]
fn knn_matches_brute_force_on_large_surfaces_and_solids() {
    let sphere = PointCloud::sphere(1500).coords;
    let solid: Vec<f64> = PointCloud::uniform(3, 1400, 5)
        .coords
        .into_iter()
        .chain((0..300).map(|i| 0.01 * ((i * 37 % 97) as f64 / 97.0)))
        .collect();
    for (name, p) in [("sphere", sphere), ("solid", solid)] {
        let m = p.len() / 3;
        let pos = Tensor::from_vec(p.clone(), (m, 3), &Device::Cpu).unwrap();
        for k in [8, 32] {
            let got = edges(&knn_graph(&pos, None, k, false).unwrap());
            let want = brute(&p, 3, &[m], |_, _| true, k, false);
            assert_eq!(got, want, "{name}, k = {k}");
        }
    }
}
