//! The synthetic generator's geometry, and the loaders on good and malformed fixtures.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tf_datasets::*;
use tf_testing::config;

fn data(points: usize) -> Synthetic {
    Synthetic {
        shapes_per_class: 3,
        points,
        noise: 0.0,
        warp: 0.0,
        seed: 11,
    }
}

#[test]
fn warp_maps_tangents_and_normals_consistently() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let shape = data(256).shape(Split::Train, 6);
    for strength in [0.3, 0.95] {
        let w = Warp::draw(strength, &mut rng);
        let mut warped = shape.clone();
        w.apply(&mut warped);
        for (i, (p, n)) in shape
            .points
            .chunks_exact(3)
            .zip(shape.normals.chunks_exact(3))
            .enumerate()
        {
            let x = [p[0], p[1], p[2]];
            let (y, j) = w.map(x);
            assert_eq!(&warped.points[3 * i..3 * i + 3], &y);
            // The Jacobian against central differences.
            let h = 1e-6;
            for c in 0..3 {
                let (mut a, mut b) = (x, x);
                a[c] += h;
                b[c] -= h;
                let (ya, yb) = (w.map(a).0, w.map(b).0);
                for r in 0..3 {
                    let fd = (ya[r] - yb[r]) / (2.0 * h);
                    assert!(
                        (fd - j[r][c]).abs() < 1e-7,
                        "J[{r}][{c}] {} vs {fd}",
                        j[r][c]
                    );
                }
            }
            // Orientation kept: det J > 0 within the strength bound.
            let det = j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1])
                - j[0][1] * (j[1][0] * j[2][2] - j[1][2] * j[2][0])
                + j[0][2] * (j[1][0] * j[2][1] - j[1][1] * j[2][0]);
            assert!(det > (1.0 - strength).powi(3) - 1e-12, "det {det}");
            // The mapped normal is a unit vector perpendicular to every mapped tangent, on
            // the same side as the mapped outward direction J n (n . J n > 0 for ||J - I|| < 1).
            let m = &warped.normals[3 * i..3 * i + 3];
            let norm: f64 = m.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-12);
            let helper = if n[0].abs() < 0.9 {
                [1.0, 0.0, 0.0]
            } else {
                [0.0, 1.0, 0.0]
            };
            let dot = |a: &[f64], b: &[f64]| (0..3).map(|k| a[k] * b[k]).sum::<f64>();
            let t1 = [
                n[1] * helper[2] - n[2] * helper[1],
                n[2] * helper[0] - n[0] * helper[2],
                n[0] * helper[1] - n[1] * helper[0],
            ];
            let t2 = [
                n[1] * t1[2] - n[2] * t1[1],
                n[2] * t1[0] - n[0] * t1[2],
                n[0] * t1[1] - n[1] * t1[0],
            ];
            let jt = |t: [f64; 3]| [0, 1, 2].map(|r| (0..3).map(|c| j[r][c] * t[c]).sum::<f64>());
            for t in [t1, t2] {
                let jt = jt(t);
                assert!(dot(m, &jt).abs() < 1e-12 * (1.0 + dot(&jt, &jt).sqrt()));
            }
            assert!(dot(m, &jt([n[0], n[1], n[2]])) > 0.0);
        }
    }
}

#[test]
fn warped_sets_are_deterministic_and_differ_from_unwarped() {
    let plain = data(128);
    let warped = Synthetic {
        warp: 0.6,
        ..plain.clone()
    };
    for class in 0..SYNTHETIC_CLASSES {
        let (a, b) = (
            warped.shape(Split::Train, class),
            warped.shape(Split::Train, class),
        );
        assert_eq!(a.points, b.points);
        let u = plain.shape(Split::Train, class);
        assert_eq!(
            u.parts, a.parts,
            "parts stay those of the undeformed pieces"
        );
        let moved = a
            .points
            .iter()
            .zip(&u.points)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(
            moved > 1e-3,
            "class {class}: warp moved points by only {moved}"
        );
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tf-datasets-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_class_is_generated_deterministically_with_unit_normals_and_parts() {
    let d = data(512);
    assert_eq!(d.len(), 30);
    for i in 0..SYNTHETIC_CLASSES {
        let a = d.shape(Split::Train, i);
        assert_eq!(
            a,
            d.shape(Split::Train, i),
            "class {i} is not deterministic"
        );
        assert_ne!(
            a.points,
            d.shape(Split::Test, i).points,
            "train and test share a shape"
        );
        assert_eq!(a.label as usize, i);
        assert_eq!(a.len(), 512, "class {i}");
        for n in a.normals.chunks_exact(3) {
            let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            assert!((len - 1.0).abs() < 1e-9);
        }
        assert!(a
            .points
            .iter()
            .all(|v| v.is_finite() && v.abs() <= 1.0 + 1e-12));
        let parts = a.parts.as_ref().unwrap();
        let mut distinct = parts.clone();
        distinct.sort();
        distinct.dedup();
        // The sphere has no geometry to tell parts apart by; every other class does.
        assert_eq!(
            distinct.len() >= 2,
            i != 0,
            "class {i} ({}): parts {distinct:?}",
            SYNTHETIC_CLASS_NAMES[i]
        );
    }
}

#[test]
fn normals_point_outward_on_convex_classes() {
    let d = data(1024);
    for class in 0..6 {
        let s = d.shape(Split::Train, class);
        for (p, n) in s.points.chunks_exact(3).zip(s.normals.chunks_exact(3)) {
            // the shape is centred at its centroid, which is inside a convex body
            assert!(
                p[0] * n[0] + p[1] * n[1] + p[2] * n[2] > 0.0,
                "class {class}: inward normal at {p:?}"
            );
        }
    }
}

#[test]
fn normals_are_perpendicular_to_the_surface() {
    normals_perpendicular(&data(2048));
}

#[test]
fn warped_shapes_keep_exact_normals() {
    normals_perpendicular(&Synthetic {
        warp: 0.6,
        ..data(2048)
    });
}

/// For each point, its nearest neighbours lie (nearly) in the tangent plane: the median of
/// |cos(angle between q - p and n)| is small on every class.
fn normals_perpendicular(d: &Synthetic) {
    for class in 0..SYNTHETIC_CLASSES {
        let s = d.shape(Split::Test, class);
        let pts: Vec<&[f64]> = s.points.chunks_exact(3).collect();
        let mut cosines = Vec::new();
        for (i, (p, n)) in pts
            .iter()
            .zip(s.normals.chunks_exact(3))
            .enumerate()
            .step_by(16)
        {
            let mut near: Vec<(f64, usize)> = pts
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, q)| ((0..3).map(|a| (q[a] - p[a]).powi(2)).sum::<f64>(), j))
                .collect();
            near.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(d2, j) in near.iter().take(4) {
                let q = pts[j];
                let dot: f64 = (0..3).map(|a| (q[a] - p[a]) * n[a]).sum();
                cosines.push(dot.abs() / d2.sqrt().max(1e-12));
            }
        }
        cosines.sort_by(f64::total_cmp);
        let median = cosines[cosines.len() / 2];
        assert!(
            median < 0.15,
            "class {class} ({}): median |cos| {median}",
            SYNTHETIC_CLASS_NAMES[class]
        );
    }
}

#[test]
fn samples_are_area_uniform_on_the_box() {
    // Faces get points in proportion to their areas (the box's parts are its axis pairs).
    let d = Synthetic {
        shapes_per_class: 1,
        points: 20_000,
        noise: 0.0,
        warp: 0.0,
        seed: 5,
    };
    let s = d.shape(Split::Train, 3);
    let half: Vec<f64> = (0..3)
        .map(|a| {
            s.points
                .chunks_exact(3)
                .map(|p| p[a].abs())
                .fold(0.0, f64::max)
        })
        .collect();
    let areas = [half[1] * half[2], half[0] * half[2], half[0] * half[1]];
    let total: f64 = areas.iter().sum();
    let parts = s.parts.unwrap();
    for axis in 0..3 {
        let frac = parts.iter().filter(|&&p| p == axis as u32).count() as f64 / parts.len() as f64;
        assert!(
            (frac - areas[axis] / total).abs() < 0.02,
            "axis {axis}: {frac} vs {}",
            areas[axis] / total
        );
    }
}

/// Part labels come from a shape's geometry, not its pose: every mirror symmetry of a shape
/// (through the coordinate planes, for the classes that have it) maps each part onto itself.
/// A label such as "the sign of z" on a shape symmetric in z fails this, and no invariant
/// model could learn it.
#[test]
fn part_labels_are_invariant_under_each_shapes_mirror_symmetries() {
    let d = Synthetic {
        shapes_per_class: 1,
        points: 6000,
        noise: 0.0,
        warp: 0.0,
        seed: 11,
    };
    // Mirror axes that are symmetries of every shape of the class (the cone and the table
    // are not symmetric in z).
    let mirrors: [&[usize]; SYNTHETIC_CLASSES] = [
        &[0, 1, 2],
        &[0, 1, 2],
        &[0, 1, 2],
        &[0, 1, 2],
        &[0, 1, 2],
        &[0, 1],
        &[0, 1, 2],
        &[0, 1, 2],
        &[0, 1, 2],
        &[0, 1],
    ];
    for (class, axes) in mirrors.iter().enumerate() {
        let s = d.shape(Split::Train, class);
        let parts = s.parts.clone().unwrap();
        let pts: Vec<&[f64]> = s.points.chunks_exact(3).collect();
        for &axis in axes.iter() {
            // The label of each mirrored point's nearest sample must be the point's own label,
            // except near part boundaries, where sampling puts the nearest sample across.
            let mut disagree = 0;
            for (i, p) in pts.iter().enumerate().step_by(7) {
                let mut m = [p[0], p[1], p[2]];
                m[axis] = -m[axis];
                let nearest = (0..pts.len())
                    .min_by(|&a, &b| {
                        let da: f64 = (0..3).map(|k| (pts[a][k] - m[k]).powi(2)).sum();
                        let db: f64 = (0..3).map(|k| (pts[b][k] - m[k]).powi(2)).sum();
                        da.total_cmp(&db)
                    })
                    .unwrap();
                disagree += usize::from(parts[nearest] != parts[i]);
            }
            let checked = pts.len().div_ceil(7);
            assert!(
                disagree * 100 <= 5 * checked,
                "class {class} ({}), mirror {axis}: {disagree} of {checked} labels change",
                SYNTHETIC_CLASS_NAMES[class]
            );
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn noise_moves_points_but_keeps_normals(seed in any::<u64>(), class in 0usize..SYNTHETIC_CLASSES) {
        let clean = Synthetic { shapes_per_class: 1, points: 128, noise: 0.0, warp: 0.0, seed }.shape(Split::Train, class);
        let noisy = Synthetic { shapes_per_class: 1, points: 128, noise: 0.01, warp: 0.0, seed }.shape(Split::Train, class);
        prop_assert_eq!(&clean.normals, &noisy.normals);
        prop_assert!(clean.points != noisy.points);
        prop_assert!(noisy.points.iter().all(|v| v.is_finite()));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn point_sets_parse_commas_spaces_comments_and_normalise_normals() {
    let dir = tmp("good");
    let p = write(
        &dir,
        "a.xyz",
        "# header\n0.1,0.2,0.3,0,0,2\n\n 1 2 3   0 1 0 \n",
    );
    let s = read_point_set(&p, Columns::Normals, 4).unwrap();
    assert_eq!(s.points, vec![0.1, 0.2, 0.3, 1.0, 2.0, 3.0]);
    assert_eq!(s.normals, vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    assert_eq!(s.label, 4);
    let p = write(&dir, "b.txt", "0 0 0 1 0 0 3\n1 1 1 0 0 1 0\n");
    assert_eq!(
        read_point_set(&p, Columns::NormalsAndPart, 0)
            .unwrap()
            .parts,
        Some(vec![3, 0])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_point_sets_are_errors_with_file_and_line() {
    let dir = tmp("bad");
    let cases = [
        (
            "columns.xyz",
            "0 0 0 1 0 0\n0 0 0 1 0\n",
            Columns::Normals,
            ":2:",
            "expected 6 values",
        ),
        (
            "nan.xyz",
            "0 0 0 1 0 0\nnan 0 0 1 0 0\n",
            Columns::Normals,
            ":2:",
            "not finite",
        ),
        (
            "inf.xyz",
            "inf 0 0 1 0 0\n",
            Columns::Normals,
            ":1:",
            "not finite",
        ),
        (
            "text.xyz",
            "0 0 zero 1 0 0\n",
            Columns::Normals,
            ":1:",
            "not a number",
        ),
        (
            "zero.xyz",
            "# c\n0 0 0 0 0 0\n",
            Columns::Normals,
            ":2:",
            "normal is zero",
        ),
        (
            "empty.xyz",
            "\n# nothing\n",
            Columns::Normals,
            "empty.xyz",
            "no points",
        ),
        (
            "part.txt",
            "0 0 0 1 0 0 -1\n",
            Columns::NormalsAndPart,
            ":1:",
            "part label",
        ),
        (
            "part2.txt",
            "0 0 0 1 0 0 1.5\n",
            Columns::NormalsAndPart,
            ":1:",
            "part label",
        ),
    ];
    for (name, text, cols, at, what) in cases {
        let p = write(&dir, name, text);
        let e = read_point_set(&p, cols, 0).unwrap_err().to_string();
        assert!(
            e.contains(name) && e.contains(at) && e.contains(what),
            "{name}: {e}"
        );
    }
    let e = read_point_set(&dir.join("missing.xyz"), Columns::Normals, 0).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn modelnet_layout_round_trips_and_reports_broken_indices() {
    let dir = tmp("modelnet");
    let d = Synthetic {
        shapes_per_class: 2,
        points: 64,
        noise: 0.0,
        warp: 0.0,
        seed: 3,
    };
    let train: Vec<Shape> = (0..d.len()).map(|i| d.shape(Split::Train, i)).collect();
    let test: Vec<Shape> = (0..10).map(|i| d.shape(Split::Test, i)).collect();
    let ids =
        write_modelnet_normal(&dir, "synthetic", &SYNTHETIC_CLASS_NAMES, &train, &test).unwrap();
    assert_eq!(ids.len(), 30);
    let m = ModelNetNormal::open(&dir).unwrap();
    assert_eq!(m.entries(Split::Train)[0].id, ids[0]);
    assert_eq!(m.entries(Split::Test)[0].id, ids[20]);
    assert_eq!(m.classes.len(), 10);
    assert_eq!(
        (m.entries(Split::Train).len(), m.entries(Split::Test).len()),
        (20, 10)
    );
    let e = &m.entries(Split::Train)[3];
    let s = m.load(e).unwrap();
    assert_eq!(s.label, train[3].label);
    assert!(s
        .points
        .iter()
        .zip(&train[3].points)
        .all(|(a, b)| (a - b).abs() < 1e-6));
    // a split line naming a shape whose file is gone
    std::fs::remove_file(&e.path).unwrap();
    let err = ModelNetNormal::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("synthetic_train.txt:4") && err.contains("missing"),
        "{err}"
    );
    // a class that is not in the shape names
    std::fs::write(dir.join("synthetic_train.txt"), "spaceship_0001\n").unwrap();
    let err = ModelNetNormal::open(&dir).unwrap_err().to_string();
    assert!(err.contains(":1:") && err.contains("spaceship"), "{err}");
    // no split files at all
    std::fs::remove_file(dir.join("synthetic_test.txt")).unwrap();
    std::fs::write(dir.join("synthetic_train.txt"), "").unwrap();
    assert!(ModelNetNormal::open(&dir)
        .unwrap_err()
        .to_string()
        .contains("_test.txt"));
    assert!(ModelNetNormal::open(&dir.join("nope")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The provenance file of converted data: read by id, absent is `None`, malformed lines are
/// errors that name the line.
#[test]
fn sources_file_reads_and_reports_bad_lines() {
    let dir = tmp("sources");
    assert!(read_sources(&dir).unwrap().is_none());
    let header = "id\tsplit\tsource\tclosed\topen\treversed\tundefined\n";
    std::fs::write(
        dir.join(SOURCES_FILE),
        format!("{header}a_0001\ttrain\tx/a.off\t2\t1\t1\t0\nb_0001\ttest\tb.off\t0\t0\t0\t1\n"),
    )
    .unwrap();
    let s = read_sources(&dir).unwrap().unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s["a_0001"].mesh, "x/a.off");
    assert_eq!(s["a_0001"].orientation.flipped, 1);
    assert!(s["a_0001"].has_outside() && !s["b_0001"].has_outside());
    for (bad, what) in [
        ("a_0001\ttrain\ta.off\t1\t0\n", "7 tab-separated"),
        ("a_0001\ttrain\ta.off\tone\t0\t0\t0\n", "not a count"),
        ("a\tt\ta\t1\t0\t0\t0\na\tt\ta\t1\t0\t0\t0\n", "duplicate"),
    ] {
        std::fs::write(dir.join(SOURCES_FILE), format!("{header}{bad}")).unwrap();
        let e = read_sources(&dir).unwrap_err().to_string();
        assert!(e.contains(SOURCES_FILE) && e.contains(what), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shapenet_layout_reads_parts_and_reports_broken_lists() {
    let dir = tmp("shapenet");
    std::fs::write(
        dir.join("synsetoffset2category.txt"),
        "Airplane\t02691156\nChair\t03001627\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("train_test_split")).unwrap();
    std::fs::create_dir_all(dir.join("03001627")).unwrap();
    std::fs::write(
        dir.join("03001627/abc.txt"),
        "0 0 0 0 0 1 2\n1 0 0 0 0 1 3\n",
    )
    .unwrap();
    let list = |name: &str, body: &str| {
        std::fs::write(
            dir.join("train_test_split")
                .join(format!("shuffled_{name}_file_list.json")),
            body,
        )
        .unwrap()
    };
    list("train", r#"["shape_data/03001627/abc"]"#);
    list("test", r#"["shape_data/03001627/missing"]"#);
    list("val", "[1, 2]");
    let s = ShapeNetParts::open(&dir).unwrap();
    let train = s.entries(ShapeNetSplit::Train).unwrap();
    assert_eq!(train[0].label, 1);
    let shape = s.load(&train[0]).unwrap();
    assert_eq!(shape.parts, Some(vec![2, 3]));
    assert!(s
        .entries(ShapeNetSplit::Test)
        .unwrap_err()
        .to_string()
        .contains("missing"));
    let e = s.entries(ShapeNetSplit::Val).unwrap_err().to_string();
    assert!(
        e.contains("shuffled_val_file_list.json:1") && e.contains("JSON"),
        "{e}"
    );
    std::fs::write(dir.join("synsetoffset2category.txt"), "Airplane\n").unwrap();
    assert!(ShapeNetParts::open(&dir)
        .unwrap_err()
        .to_string()
        .contains(":1:"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `.npy` file as numpy writes it (version 1, little-endian float64 or int64).
fn npy(shape: &[usize], descr: &str, data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The published charged N-body files (positions and velocities `(sims, frames, d, n)`,
/// charges `(sims, n, 1)`) read back into per-system `(frames, n, d)` trajectories; broken files
/// are errors that say what is wrong.
#[test]
fn published_nbody_files_read_back_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sims, frames, d, n) = (2, 3, 3, 5);
    let loc: Vec<f64> = (0..sims * frames * d * n).map(|i| i as f64).collect();
    let vel: Vec<f64> = loc.iter().map(|v| -v).collect();
    let charges: Vec<f64> = (0..sims * n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let write = |kind: &str, shape: &[usize], data: &[f64]| {
        std::fs::write(
            dir.path().join(published_name(kind, "test")),
            npy(shape, "<f8", &f64_bytes(data)),
        )
        .unwrap();
    };
    write("loc", &[sims, frames, d, n], &loc);
    write("vel", &[sims, frames, d, n], &vel);
    write("charges", &[sims, n, 1], &charges);
    let t = read_published(dir.path(), "test").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!((t[1].frames(), t[1].particles, t[1].d), (frames, n, d));
    // System 1, frame 2, particle 4, axis 1 sits at [1][2][1][4] in the file.
    let file_index = ((frames + 2) * d + 1) * n + 4;
    assert_eq!(t[1].loc_at(2)[4 * d + 1], loc[file_index]);
    assert_eq!(t[1].vel_at(2)[4 * d + 1], -loc[file_index]);
    assert_eq!(t[1].charges, charges[n..].to_vec());

    let refused = |what: &str| {
        let e = read_published(dir.path(), "test").unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    };
    write("charges", &[sims, n], &charges);
    refused("expected 3 dimensions");
    write(
        "charges",
        &[sims, n + 1, 1],
        &[charges.clone(), vec![1.0; sims]].concat(),
    );
    refused("expected [2, 5, 1]");
    write("charges", &[sims, n, 1], &charges);
    let ints: Vec<u8> = charges
        .iter()
        .flat_map(|&q| (q as i64).to_le_bytes())
        .collect();
    std::fs::write(
        dir.path().join(published_name("charges", "test")),
        npy(&[sims, n, 1], "<i8", &ints),
    )
    .unwrap();
    refused("float32 or float64");
    write("charges", &[sims, n, 1], &charges);
    let full = npy(&[sims, frames, d, n], "<f8", &f64_bytes(&vel));
    std::fs::write(
        dir.path().join(published_name("vel", "test")),
        &full[..full.len() - 8],
    )
    .unwrap();
    refused("truncated");
    // A header announcing far more data than the file holds is refused before any allocation.
    std::fs::write(
        dir.path().join(published_name("vel", "test")),
        npy(&[1 << 40, frames, d, n], "<f8", &[]),
    )
    .unwrap();
    refused("bytes of data");
    std::fs::write(dir.path().join(published_name("vel", "test")), b"not numpy").unwrap();
    refused("magic");
}

/// Issue 31, item 12: a UTF-8 byte-order mark and `#` comments after values are accepted; a
/// truncated ASCII STL is an error; an OS error is printed once in a chain.
#[test]
fn small_format_details() {
    let dir = tempfile::tempdir().unwrap();
    let xyz = dir.path().join("bom.xyz");
    std::fs::write(
        &xyz,
        "\u{feff}0 0 1 # first\n1 0 0\n# a comment line\n0 1 0 # last\n",
    )
    .unwrap();
    let (p, n) = tf_datasets::read_points(&xyz).unwrap();
    assert_eq!(p, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert!(n.is_none());
    let stl = dir.path().join("cut.stl");
    let full = "solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid a\n";
    std::fs::write(&stl, full).unwrap();
    assert!(tf_datasets::read_mesh(&stl).is_ok());
    for cut in [full.len() - 11, full.find("vertex 1").unwrap()] {
        std::fs::write(&stl, &full[..cut]).unwrap();
        let e = tf_datasets::read_mesh(&stl).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
    let e = tf_datasets::read_points(&dir.path().join("absent.xyz")).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::new(e));
    assert_eq!(chain.matches("os error").count(), 1, "{chain}");
}

/// Issue 31, item 6: a text file without newlines is refused at the line cap, not buffered.
#[test]
fn overlong_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("long.xyz");
    std::fs::write(&f, "1 ".repeat(tf_datasets::MAX_LINE_BYTES)).unwrap();
    let e = tf_datasets::read_points(&f).unwrap_err().to_string();
    assert!(e.contains("longer than") && e.contains("long.xyz:1"), "{e}");
}
