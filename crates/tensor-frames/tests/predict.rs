//! The bundled normal estimator: loads on a fresh clone, rotating or reflecting the input
//! rotates the predicted normals (f32 tolerance), and bad inputs are clean errors.
#![allow(clippy::unwrap_used)]

use rand::SeedableRng;
use tensor_frames::datasets::{Split, Synthetic};
use tensor_frames::predict::{bundled_model, predict, read_input, Output, PredictOptions};
use tf_group::orthogonal::haar_orthogonal_host;

fn normals(out: Output) -> Vec<f64> {
    match out {
        Output::Normals(n) => n,
        other => panic!("expected normals, got {other:?}"),
    }
}

#[test]
fn bundled_model_is_equivariant_and_orients_normals() {
    let path = bundled_model().expect("models/normals must ship with the repository");
    let model = tensor_frames::train::load_model(&path, candle_core::DType::F32).unwrap();
    // 2.5 groups' worth of points, at an odd position and scale.
    let shape = Synthetic {
        shapes_per_class: 1,
        points: 2500,
        noise: 0.0,
        warp: 0.0,
        seed: 9,
    }
    .shape(Split::Test, 1);
    let pts: Vec<f64> = shape.points.iter().map(|v| 37.0 * v + 5.0).collect();
    // Three random groupings, averaged sign-aligned (see `predict`); then the same with a
    // second, self-refining round (the estimates re-signed by the first prediction).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for rounds in [1, 2] {
        let opts = PredictOptions {
            passes: 3,
            rounds,
            ..Default::default()
        };
        let (out, timing) = predict(&model, &pts, 1024, &opts).unwrap();
        assert!(timing.points_per_second > 0.0);
        assert!(timing.features > 0.0 && timing.model > 0.0, "{timing:?}");
        let n1 = normals(out);
        // Oriented agreement with the exact normals (an ellipsoid: easy).
        let cos: f64 = n1
            .chunks(3)
            .zip(shape.normals.chunks(3))
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>())
            .sum::<f64>()
            / 2500.0;
        assert!(cos > 0.8, "{rounds} round(s): mean cos {cos}");
        assert!(n1
            .chunks(3)
            .all(|v| (v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-9));
        for _ in 0..2 {
            // Both determinant signs over the draws are likely; force one reflection explicitly.
            let mut q = haar_orthogonal_host(3, &mut rng);
            if tf_group::orthogonal::det_host(&q, 3) > 0.0 {
                q.iter_mut().take(3).for_each(|v| *v = -*v);
            }
            let apply = |v: &[f64]| -> Vec<f64> {
                v.chunks(3)
                    .flat_map(|p| {
                        (0..3)
                            .map(|r| (0..3).map(|c| q[r * 3 + c] * p[c]).sum::<f64>())
                            .collect::<Vec<_>>()
                    })
                    .collect()
            };
            let moved: Vec<f64> = apply(&pts)
                .iter()
                .enumerate()
                .map(|(i, v)| v - 2.0 + i as f64 % 3.0)
                .collect();
            let n2 = normals(predict(&model, &moved, 1024, &opts).unwrap().0);
            let expect = apply(&n1);
            // Per point, the largest component error. `predict` works in f32 (positions included),
            // and a few points amplify that round-off: a near-tie among neighbours at the edge of a
            // PCA neighbourhood, or estimates that nearly cancel before normalisation. The
            // architecture's exactness is checked in f64 by `equivariance --checkpoint` (cli.rs).
            let mut errs: Vec<f64> = n2
                .chunks(3)
                .zip(expect.chunks(3))
                .map(|(a, b)| {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max)
                })
                .collect();
            errs.sort_by(f64::total_cmp);
            let (p999, max) = (errs[errs.len() * 999 / 1000], errs[errs.len() - 1]);
            assert!(
                p999 < 1e-3 && max < 1e-2,
                "f32, {rounds} round(s): rotated prediction differs by {p999} (99.9%), {max} (max)"
            );
        }
    }
}

#[test]
fn bad_inputs_are_clean_errors() {
    let model =
        tensor_frames::train::load_model(&bundled_model().unwrap(), candle_core::DType::F32)
            .unwrap();
    let opts = PredictOptions::default();
    assert!(predict(&model, &[], 1024, &opts).is_err());
    assert!(predict(&model, &[1.0; 30], 1024, &opts).is_err()); // all points coincide
    let mut nan = vec![0.5; 60];
    nan[7] = f64::NAN;
    assert!(predict(&model, &nan, 1024, &opts).is_err());
    assert!(predict(&model, &[0.0; 7], 1024, &opts).is_err()); // not n x 3
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xyz");
    std::fs::write(&bad, "0 0 0\n1 2\n").unwrap();
    let e = read_input(&bad, None).unwrap_err().to_string();
    assert!(e.contains("bad.xyz") && e.contains(":2"), "{e}");
    std::fs::write(&bad, "0 0 nan\n").unwrap();
    assert!(read_input(&bad, None).is_err());
}

/// Neighbour consensus repairs isolated sign errors, keeps directions, and does nothing with
/// zero rounds.
#[test]
fn orientation_consensus_repairs_isolated_flips() {
    let n = 2000;
    let pts = tf_testing::strategies::PointCloud::sphere(n).coords;
    let exact = pts.clone(); // outward unit normals of the unit sphere
    let mut noisy = exact.clone();
    for i in (0..n).step_by(10) {
        noisy[3 * i..3 * i + 3].iter_mut().for_each(|v| *v = -*v);
    }
    let mut same = noisy.clone();
    assert_eq!(
        tensor_frames::predict::orientation_consensus(&pts, &mut same, 3, 16, 0).unwrap(),
        0
    );
    assert_eq!(same, noisy);
    let flips = tensor_frames::predict::orientation_consensus(&pts, &mut noisy, 3, 16, 4).unwrap();
    assert_eq!(flips, n / 10);
    assert_eq!(noisy, exact);
}

/// `evaluate-normals` on a small ModelNet-normal fixture: one row per method, scores in range,
/// PCA near-perfect on smooth shapes at every k, and the bundled model orients them.
#[test]
fn evaluate_normals_scores_every_method_on_a_fixture() {
    use tensor_frames::evaluate::{evaluate_normals, NormalsEval};
    let dir = tempfile::tempdir().unwrap();
    let shapes = |split| {
        (0..2)
            .map(|class| {
                Synthetic {
                    shapes_per_class: 1,
                    points: 1500,
                    noise: 0.0,
                    warp: 0.0,
                    seed: 4,
                }
                .shape(split, class)
            })
            .map(|mut s| {
                s.label = 0;
                s
            })
            .collect::<Vec<_>>()
    };
    tensor_frames::datasets::write_modelnet_normal(
        dir.path(),
        "fixture",
        &["blob"],
        &shapes(Split::Train),
        &shapes(Split::Test),
    )
    .unwrap();
    let model =
        tensor_frames::train::load_model(&bundled_model().unwrap(), candle_core::DType::F32)
            .unwrap();
    let e = NormalsEval {
        group: 1024,
        ks: vec![16, 8],
        max_shapes: None,
        seed: 1,
        noise: 0.0,
        passes: 1,
        rounds: 1,
        split: Default::default(),
    };
    let report = evaluate_normals(&model, "fixture", dir.path(), &e).unwrap();
    let rows = &report.rows;
    // ours, + consensus, + winding; PCA at k = 16 and 8 on all points, PCA k = 16 + winding,
    // PCA k = 16 + visibility, PCA on the groups.
    assert_eq!(rows.len(), 8);
    for r in rows {
        assert_eq!((r.shapes, r.points), (2, 3000), "{}", r.method);
        assert!(r.cos.abs() <= r.abs_cos + 1e-12 && r.abs_cos <= 1.0 + 1e-12);
    }
    assert!(rows[3].method.contains("k = 16") && rows[4].method.contains("k = 8"));
    assert!(rows[3].abs_cos > 0.95 && rows[4].abs_cos > 0.95);
    assert!(rows[0].cos > 0.8, "bundled model: mean cos {}", rows[0].cos);
    // Winding orientation changes signs only, and on these closed blobs orients PCA's
    // normals at least as well as the centroid heuristic.
    assert!(rows[2].method.contains("winding") && rows[5].method.contains("winding"));
    assert!((rows[2].abs_cos - rows[0].abs_cos).abs() < 1e-12);
    assert!((rows[5].abs_cos - rows[3].abs_cos).abs() < 1e-12);
    assert!(
        rows[5].cos >= rows[3].cos - 1e-9,
        "{} vs {}",
        rows[5].cos,
        rows[3].cos
    );
    // So does visibility (signs only; on a closed surface the outward side sees out).
    assert!(rows[6].method.contains("visibility"));
    assert!((rows[6].abs_cos - rows[3].abs_cos).abs() < 1e-12);
    assert!(
        rows[6].cos >= rows[3].cos - 1e-9,
        "{} vs {}",
        rows[6].cos,
        rows[3].cos
    );
    // Per-shape scores average to the rows (equal point counts).
    assert_eq!(report.shapes.len(), 2);
    assert!(report.shapes[0].id.starts_with("blob_"));
    let mean = report.shapes.iter().map(|s| s.pca_cos).sum::<f64>() / 2.0;
    assert!((mean - rows[3].cos).abs() < 1e-9);
    // With a provenance file, three more rows: the shapes whose mesh has an outside.
    let ids = ["blob_0003", "blob_0004"]; // train shapes are 0001 and 0002
    let mut tsv = String::from("id\tsplit\tsource\tclosed\topen\treversed\tundefined\n");
    tsv.push_str(&format!("{}\ttest\ta.off\t1\t0\t0\t0\n", ids[0]));
    tsv.push_str(&format!("{}\ttest\ttriangle.off\t0\t0\t0\t1\n", ids[1]));
    std::fs::write(dir.path().join(tensor_frames::datasets::SOURCES_FILE), tsv).unwrap();
    let report = evaluate_normals(&model, "fixture", dir.path(), &e).unwrap();
    assert_eq!(report.rows.len(), 11);
    let (ours, winding, pca) = (&report.rows[8], &report.rows[9], &report.rows[10]);
    assert_eq!((ours.shapes, ours.points, pca.points), (1, 1500, 1500));
    assert_eq!(winding.points, 1500);
    let first = &report.shapes[0];
    assert_eq!((first.id.as_str(), first.has_outside), (ids[0], Some(true)));
    assert_eq!(report.shapes[1].has_outside, Some(false));
    assert!((ours.cos - first.cos).abs() < 1e-12 && (pca.cos - first.pca_cos).abs() < 1e-12);
    let none = NormalsEval { ks: vec![], ..e };
    assert!(evaluate_normals(&model, "fixture", dir.path(), &none).is_err());
}

/// `evaluate-normals --split val` scores the trainer's validation shapes (every tenth training
/// shape) and nothing from the test split.
#[test]
fn evaluate_normals_validation_split_is_the_trainers() {
    use tensor_frames::evaluate::{evaluate_normals, EvalSplit, NormalsEval};
    let dir = tempfile::tempdir().unwrap();
    let shape = |split, class| {
        let mut s = Synthetic {
            shapes_per_class: 1,
            points: 1200,
            noise: 0.0,
            warp: 0.0,
            seed: 5,
        }
        .shape(split, class);
        s.label = 0;
        s
    };
    // Eleven training shapes: the tenth (index 9) is the only validation shape.
    let train: Vec<_> = (0..11).map(|i| shape(Split::Train, i % 2)).collect();
    let test = vec![shape(Split::Test, 0)];
    tensor_frames::datasets::write_modelnet_normal(dir.path(), "fixture", &["blob"], &train, &test)
        .unwrap();
    assert!((0..11)
        .filter(|&i| tensor_frames::train::is_validation(i))
        .eq([9]));
    let model =
        tensor_frames::train::load_model(&bundled_model().unwrap(), candle_core::DType::F32)
            .unwrap();
    let e = NormalsEval {
        group: 1024,
        ks: vec![16],
        max_shapes: None,
        seed: 1,
        noise: 0.0,
        passes: 1,
        rounds: 1,
        split: EvalSplit::Validation,
    };
    let report = evaluate_normals(&model, "fixture", dir.path(), &e).unwrap();
    let ids: Vec<&str> = report.shapes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["blob_0010"]);
    assert!(report
        .rows
        .iter()
        .all(|r| (r.shapes, r.points) == (1, 1200)));
    let test = evaluate_normals(
        &model,
        "fixture",
        dir.path(),
        &NormalsEval {
            split: EvalSplit::Test,
            ..e.clone()
        },
    )
    .unwrap();
    assert_eq!(test.shapes.len(), 1);
    assert_eq!(test.shapes[0].id, "blob_0012");

    // Fewer than ten training shapes leave no validation shape: an error, not a table of zeros.
    let small = tempfile::tempdir().unwrap();
    tensor_frames::datasets::write_modelnet_normal(
        small.path(),
        "fixture",
        &["blob"],
        &train[..3],
        &[],
    )
    .unwrap();
    let err = evaluate_normals(&model, "fixture", small.path(), &e)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no validation shapes"), "{err}");
}

/// Written positions read back to the same numbers at any scale (a cloud in metres at 1e-6
/// resolution, or far from the origin), and normals keep six decimals.
#[test]
fn written_positions_round_trip_exactly() {
    use tensor_frames::predict::{format_output, Output};
    let points = vec![
        1.234_567_89e-7,
        -3.3e-9,
        0.1,
        6_378_137.123_456_7,
        -2.5e150,
        1.0 / 3.0,
    ];
    let normals = vec![0.0, 0.6, 0.8, 1.0, 0.0, 0.0];
    let text = format_output(&points, 3, &Output::Normals(normals));
    let read: Vec<f64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(read.len(), 12);
    for (row, p) in read.chunks(6).zip(points.chunks(3)) {
        assert_eq!(&row[..3], p, "{text}");
    }
    assert!(text
        .lines()
        .next()
        .unwrap()
        .ends_with("0.000000 0.600000 0.800000"));
}

/// The weights compiled into the binary are the shipped model: same configuration, same
/// training size, same outputs as loading `models/normals` from disk.
#[test]
fn the_compiled_in_model_is_the_shipped_one() {
    use tensor_frames::predict::{bundled, bundled_model, predict, trained_points, Output};
    let path = bundled_model().unwrap();
    let disk = tensor_frames::train::load_model(&path, candle_core::DType::F32).unwrap();
    let (compiled, points) = bundled(candle_core::DType::F32).unwrap();
    assert_eq!(compiled.config(), disk.config());
    assert_eq!(points, trained_points(&path));
    let cloud = tf_testing::strategies::PointCloud::sphere(300).coords;
    let opts = Default::default();
    let a = predict(&disk, &cloud, points, &opts).unwrap().0;
    let b = predict(&compiled, &cloud, points, &opts).unwrap().0;
    match (a, b) {
        (Output::Normals(a), Output::Normals(b)) => assert_eq!(a, b),
        _ => panic!("the bundled model predicts normals"),
    }
}

/// A face-less PLY point cloud with normals (as Open3D writes one) goes through predict: its
/// points are the input, its normals the reference.
#[test]
fn predict_reads_ply_point_clouds() {
    use tensor_frames::predict::{agreement, bundled, predict, read_input, Output};
    let dir = tempfile::tempdir().unwrap();
    let cloud = tf_testing::strategies::PointCloud::sphere(400).coords;
    let mut text = String::from(
        "ply\nformat ascii 1.0\nelement vertex 400\nproperty float x\nproperty float y\n\
         property float z\nproperty float nx\nproperty float ny\nproperty float nz\nend_header\n",
    );
    for u in cloud.chunks(3) {
        text += &format!(
            "{} {} {} {} {} {}\n",
            2.0 * u[0],
            2.0 * u[1],
            2.0 * u[2],
            u[0],
            u[1],
            u[2]
        );
    }
    let path = dir.path().join("scan.ply");
    std::fs::write(&path, text).unwrap();
    let (points, reference) = read_input(&path, None).unwrap();
    assert_eq!(points.len(), 1200);
    let reference = reference.expect("the file's normals");
    let (model, group) = bundled(candle_core::DType::F32).unwrap();
    let Output::Normals(n) = predict(&model, &points, group, &Default::default())
        .unwrap()
        .0
    else {
        panic!("normals expected");
    };
    let (cos, _) = agreement(&n, &reference, 3);
    assert!(cos > 0.9, "mean cos {cos}");
}

fn sphere_text(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let t = (1.0 - 2.0 * (i as f64 + 0.5) / n as f64).acos();
        let p = std::f64::consts::PI * (1.0 + 5f64.sqrt()) * i as f64;
        s.push_str(&format!(
            "{} {} {}\n",
            t.sin() * p.cos(),
            t.sin() * p.sin(),
            t.cos()
        ));
    }
    s
}

fn cli(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tensor-frames"))
        .arg("predict")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Output formats by extension and --format, read back by our readers; `-` for stdin and
/// stdout; NaN points an error unless --skip-invalid; unknown formats named.
#[test]
fn predict_writes_the_formats_point_cloud_tools_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.xyz");
    std::fs::write(&input, sphere_text(400)).unwrap();
    let input_s = input.to_str().unwrap();
    let (want, _) = read_input(&input, None).unwrap();
    for (name, format) in [
        ("o.ply", None),
        ("o.pcd", None),
        ("o.npy", None),
        ("o.xyz", None),
        ("o2.ply", Some("ply-ascii")),
        ("o2.pcd", Some("pcd-ascii")),
    ] {
        let out = dir.path().join(name);
        let mut args = vec!["--input", input_s, "--out", out.to_str().unwrap()];
        if let Some(f) = format {
            args.extend(["--format", f]);
        }
        let o = cli(&args, None);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (points, normals) = read_input(&out, None).unwrap();
        assert_eq!(points, want, "{name}: positions must round-trip exactly");
        let normals = normals.unwrap();
        assert!(normals
            .chunks(3)
            .all(|m| ((m[0] * m[0] + m[1] * m[1] + m[2] * m[2]).sqrt() - 1.0).abs() < 1e-3));
    }
    let head = std::fs::read(dir.path().join("o.ply")).unwrap();
    let head = String::from_utf8_lossy(&head[..200]).to_string();
    assert!(
        head.contains("element vertex 400\n")
            && head.contains("property float nx\nproperty float ny\nproperty float nz\n")
    );
    // stdin to stdout: text on stdout, status on stderr.
    let o = cli(&["--input", "-", "--out", "-"], Some(&sphere_text(400)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 400);
    assert!(text.lines().all(|l| l.split_whitespace().count() == 6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("400 points"));
    // A NaN row: an error naming the point, or dropped and counted.
    let mut with_nan = sphere_text(400);
    with_nan.push_str("nan nan nan\n");
    let nan = dir.path().join("nan.xyz");
    std::fs::write(&nan, &with_nan).unwrap();
    let out = dir.path().join("nan.ply");
    let args = [
        "--input",
        nan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = cli(&args, None);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && (err.contains("401") || err.contains("nan")),
        "{err}"
    );
    let mut args = args.to_vec();
    args.push("--skip-invalid");
    let o = cli(&args, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("skipped 1 points"));
    assert_eq!(read_input(&out, None).unwrap().0, want);
    // Unknown formats are named.
    let o = cli(
        &[
            "--input",
            input_s,
            "--out",
            dir.path().join("o.foo").to_str().unwrap(),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown output format \"foo\""));
    let o = cli(
        &["--input", input_s, "--out", "x.ply", "--format", "las"],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown format \"las\""));
}

/// Issue 31, item 12: a cloud measured at 1e-10 scale is a shape like any other (predict
/// centres and scales internally); only truly coincident points are refused.
#[test]
fn tiny_clouds_are_shapes_and_coincident_points_are_not() {
    let path = bundled_model().unwrap();
    let model = tensor_frames::train::load_model(&path, candle_core::DType::F32).unwrap();
    let unit: Vec<f64> = sphere_text(300)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let tiny: Vec<f64> = unit.iter().map(|v| v * 1e-10).collect();
    let opts = PredictOptions::default();
    let a = normals(predict(&model, &unit, 1024, &opts).unwrap().0);
    let b = normals(predict(&model, &tiny, 1024, &opts).unwrap().0);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "{worst}");
    let same = vec![1e-10; 300 * 3];
    let e = predict(&model, &same, 1024, &opts).unwrap_err().to_string();
    assert!(e.contains("coincide"), "{e}");
}

/// `--viewpoint` orients every normal towards the sensor (inside a sphere: all inward);
/// `--quiet` prints nothing.
#[test]
fn viewpoint_orients_towards_the_sensor_and_quiet_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.xyz");
    std::fs::write(&input, sphere_text(400)).unwrap();
    let out = dir.path().join("v.xyz");
    let o = cli(
        &[
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--viewpoint",
            "0,0,0",
            "--quiet",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let (p, n) = read_input(&out, None).unwrap();
    let n = n.unwrap();
    assert!(p
        .chunks(3)
        .zip(n.chunks(3))
        .all(|(p, n)| p[0] * n[0] + p[1] * n[1] + p[2] * n[2] < 0.0));
    let o = cli(
        &[
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--viewpoint",
            "1,2",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("viewpoint"));
}

/// `--columns`: colours are refused as normals without it and carried to the output with it; a
/// CSV header line is skipped; intensity is carried through text.
#[test]
fn columns_say_what_text_holds_and_extras_are_carried() {
    let dir = tempfile::tempdir().unwrap();
    let base: Vec<String> = sphere_text(300).lines().map(str::to_string).collect();
    let rgb: String = base
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{l} {} 10 200\n", i % 256))
        .collect();
    let csv: String = std::iter::once("x,y,z,intensity\n".to_string())
        .chain(
            base.iter()
                .enumerate()
                .map(|(i, l)| format!("{},{}\n", l.replace(' ', ","), i as f64 * 0.5)),
        )
        .collect();
    let rgb_in = dir.path().join("rgb.xyz");
    let csv_in = dir.path().join("i.csv");
    std::fs::write(&rgb_in, rgb).unwrap();
    std::fs::write(&csv_in, csv).unwrap();
    let out = dir.path().join("o.ply");
    let o = cli(
        &[
            "--input",
            rgb_in.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--columns xyzrgb"));
    let o = cli(
        &[
            "--input",
            rgb_in.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--columns",
            "xyzrgb",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let head = String::from_utf8_lossy(&bytes[..400]).to_string();
    assert!(
        head.contains("property uchar red\nproperty uchar green\nproperty uchar blue\nend_header"),
        "{head}"
    );
    let end = head.find("end_header\n").unwrap() + "end_header\n".len();
    assert_eq!(bytes.len() - end, 300 * (24 + 12 + 3));
    // The second point's colour bytes: red = 1, green = 10, blue = 200.
    let rec = &bytes[end + 39..end + 78];
    assert_eq!(&rec[36..], &[1, 10, 200]);
    let txt = dir.path().join("o.xyz");
    let o = cli(
        &[
            "--input",
            csv_in.to_str().unwrap(),
            "--out",
            txt.to_str().unwrap(),
            "--columns",
            "xyzi",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&txt).unwrap();
    let second: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((second.len(), second[6]), (7, "0.5"));
    let o = cli(
        &[
            "--input",
            csv_in.to_str().unwrap(),
            "--out",
            txt.to_str().unwrap(),
            "--columns",
            "xyzq",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown columns"));
}

/// A PLY cloud's other vertex properties (colours, intensity) come out with the normals.
#[test]
fn ply_vertex_properties_are_carried_through() {
    let dir = tempfile::tempdir().unwrap();
    let pts: Vec<String> = sphere_text(300).lines().map(str::to_string).collect();
    let mut ply = format!(
        "ply\nformat ascii 1.0\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\n\
         property uchar red\nproperty uchar green\nproperty uchar blue\nproperty float intensity\nend_header\n",
        pts.len()
    );
    for (i, p) in pts.iter().enumerate() {
        ply.push_str(&format!("{p} {} 7 9 {}\n", i % 256, i as f64 * 0.25));
    }
    let input = dir.path().join("c.ply");
    std::fs::write(&input, ply).unwrap();
    let out = dir.path().join("o.ply");
    let o = cli(
        &[
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "ply-ascii",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("property uchar red\nproperty uchar green\nproperty uchar blue\nproperty float intensity\nend_header"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.ends_with(" 0.75"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[6..], &["3", "7", "9", "0.75"]);
}

/// `--k` changes the neighbourhoods of the input features (and is refused where there are
/// none, or too few to fit a plane); `--vote-points` below the cloud's size votes on a
/// subsample and still orients a closed surface outward.
#[test]
fn neighbourhood_size_and_vote_cap_are_options() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.xyz");
    std::fs::write(&input, sphere_text(600)).unwrap();
    let run = |extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let mut args = vec![
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = cli(&args, None);
        (o, out)
    };
    let (o, default) = run(&[], "default.xyz");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (o, wide) = run(&["--k", "24"], "wide.xyz");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, a) = read_input(&default, None).unwrap();
    let (_, b) = read_input(&wide, None).unwrap();
    assert_ne!(a, b, "--k 24 changed nothing");
    let (o, capped) = run(&["--vote-points", "150"], "capped.xyz");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (p, n) = read_input(&capped, None).unwrap();
    let outward = p
        .chunks(3)
        .zip(n.unwrap().chunks(3))
        .filter(|(p, n)| p[0] * n[0] + p[1] * n[1] + p[2] * n[2] > 0.0)
        .count();
    assert!(outward >= 594, "{outward} of 600 outward");
    for bad in ["--snap=-1", "--snap=90", "--snap=nan"] {
        let (o, _) = run(&[bad], "bad.xyz");
        assert!(!o.status.success(), "--snap {bad} accepted");
        assert!(String::from_utf8_lossy(&o.stderr).contains("--snap"));
    }
    let (o, _) = run(&["--k", "1"], "bad.xyz");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("neighbours"));
}

/// Snapping: a prediction within the angle of the PCA estimate takes its direction (with the
/// prediction's sign); one beyond it is kept; a zero estimate is skipped.
#[test]
fn snapping_takes_the_estimate_only_within_the_angle() {
    use tensor_frames::predict::snap;
    // Feature rows: one scalar, then the estimate.
    let features: Vec<f32> = vec![0.5, 0.0, 0.0, 2.0, 0.5, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0];
    let tilt = |deg: f64| {
        let r = deg.to_radians();
        [r.sin(), 0.0, -r.cos()]
    };
    let mut normals: Vec<f64> = [tilt(3.0), tilt(20.0), tilt(3.0)].concat();
    let before = normals.clone();
    snap(&mut normals, &features, 4, 1, 3, 5.0);
    assert_eq!(
        &normals[0..3],
        &[0.0, 0.0, -1.0],
        "within 5 degrees: the estimate, sign kept"
    );
    assert_eq!(&normals[3..6], &before[3..6], "20 degrees off: kept");
    assert_eq!(&normals[6..9], &before[6..9], "zero estimate: kept");
}
