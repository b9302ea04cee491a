//! The `tensor-frames` binary: JSON fields, thresholds, and clean failures.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tensor-frames"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_layer_is_equivariant_in_several_dimensions() {
    for layer in tf_mp::LAYER_NAMES {
        for dim in ["2", "3", "4", "7"] {
            let out = run(&[
                "equivariance",
                "--layer",
                layer,
                "--dim",
                dim,
                "--trials",
                "1",
                "--points",
                "24",
                "--json",
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            for key in [
                "layer",
                "dim",
                "dtype",
                "trials",
                "max_abs_error",
                "max_rel_error",
                "degenerate_frames",
                "params",
            ] {
                assert!(v.get(key).is_some(), "missing {key} in {v}");
            }
            let err = v["max_rel_error"].as_f64().unwrap();
            assert!(err <= 1e-9, "{layer} d={dim}: {err}");
        }
    }
}

/// The bundled normal estimator, in f64 with its input features recomputed from the moved cloud:
/// exactly equivariant (the f32 `predict` test in predict.rs has f32 tolerances).
#[test]
fn bundled_model_is_exactly_equivariant_in_f64() {
    let ckpt = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/normals");
    let out = run(&[
        "equivariance",
        "--checkpoint",
        ckpt,
        "--trials",
        "1",
        "--dtype",
        "f64",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = v["max_rel_error"].as_f64().unwrap();
    assert!(err <= 1e-9, "bundled model: {err}");
    assert_eq!(v["degenerate_frames"].as_u64(), Some(0));
}

#[test]
fn identity_frames_are_reported_as_not_equivariant() {
    let out = run(&[
        "equivariance",
        "--layer",
        "edgeconv",
        "--frames",
        "identity",
        "--trials",
        "1",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["max_rel_error"].as_f64().unwrap() > 1e-3);
}

#[test]
fn f32_runs_and_table_output_works() {
    let out = run(&[
        "equivariance",
        "--layer",
        "gcn",
        "--dtype",
        "f32",
        "--trials",
        "1",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max rel error"), "{text}");
}

#[test]
fn bad_arguments_fail_cleanly() {
    for (args, needle) in [
        (vec!["equivariance", "--layer", "nope"], "unknown layer"),
        (
            vec!["equivariance", "--layer", "gcn", "--dim", "1"],
            "at least 2",
        ),
        (
            vec!["equivariance", "--layer", "gcn", "--dim", "200"],
            "above 64",
        ),
        (
            vec![
                "equivariance",
                "--model",
                "pointnet2-normals",
                "--dim",
                "200",
            ],
            "above 64",
        ),
        (
            vec!["equivariance", "--layer", "gcn", "--frames", "magic"],
            "unknown frames",
        ),
        (
            vec!["equivariance", "--layer", "gcn", "--in-reps", "2x1q"],
            "parity",
        ),
        (
            vec!["evaluate-normals", "--group", "4", "--data", "nowhere"],
            "at least 8",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn equivariance_table_writes_markdown_and_json() {
    let dir = std::env::temp_dir().join(format!("tf-table-{}", std::process::id()));
    let out = run(&[
        "equivariance-table",
        "--out",
        dir.to_str().unwrap(),
        "--trials",
        "1",
        "--dims",
        "2,3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("equivariance.md")).unwrap();
    assert!(md.contains("| edgeconv | learned | 3 |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("equivariance.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["rows"].as_array().unwrap().len(),
        tf_mp::LAYER_NAMES.len() * 4 * 2
    );
    assert!(!dir.join("equivariance.md.tmp").exists());
    std::fs::remove_dir_all(&dir).unwrap();
    let bad = run(&["equivariance-table", "--dims", "1"]);
    assert!(!bad.status.success());
}

#[test]
fn models_are_equivariant_from_the_cli() {
    for (model, dims) in [
        ("pointnet2-normals", vec!["2", "3", "4"]),
        ("pointnet2-classification", vec!["3"]),
        ("dgcnn-normals", vec!["3"]),
        ("attention-normals", vec!["3"]),
    ] {
        for dim in dims {
            let out = run(&[
                "equivariance",
                "--model",
                model,
                "--dim",
                dim,
                "--trials",
                "1",
                "--points",
                "48",
                "--json",
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(v["params"].as_u64().unwrap() > 0);
            let err = v["max_rel_error"].as_f64().unwrap();
            assert!(err <= 1e-9, "{model} d={dim}: {err}");
        }
    }
    let out = run(&[
        "equivariance",
        "--model",
        "pointnet2-normals-plain",
        "--trials",
        "1",
        "--points",
        "48",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["max_rel_error"].as_f64().unwrap() > 1e-3);
    let bad = run(&["equivariance", "--model", "nope"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown model"));
    let neither = run(&["equivariance"]);
    assert!(!neither.status.success());
}

#[test]
fn data_synth_writes_a_dataset_that_inspect_reads() {
    let dir = std::env::temp_dir().join(format!("tf-cli-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&[
        "data",
        "synth",
        "--out",
        dir.to_str().unwrap(),
        "--shapes-per-class",
        "1",
        "--points",
        "32",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["data", "inspect", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10 classes, 10 train, 10 test"), "{text}");
    // a broken file is reported with its line
    let bad = dir.join("bad.xyz");
    std::fs::write(&bad, "0 0 0 1 0 0\n0 0 nan 1 0 0\n").unwrap();
    let out = run(&["data", "inspect", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.xyz:2") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_convert_samples_meshes_into_the_modelnet_layout() {
    let dir = std::env::temp_dir().join(format!("tf-cli-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tet = "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n";
    for (class, name) in [
        ("chairs", "a.off"),
        ("chairs", "b.off"),
        ("tables", "c.off"),
    ] {
        std::fs::create_dir_all(dir.join("in").join(class)).unwrap();
        std::fs::write(dir.join("in").join(class).join(name), tet).unwrap();
    }
    std::fs::write(
        dir.join("in/tables/broken.off"),
        "OFF\n1 1 0\n0 0 0\n3 0 1 2\n",
    )
    .unwrap();
    let (i, o) = (dir.join("in"), dir.join("out"));
    let out = run(&[
        "data",
        "convert",
        "--meshes",
        i.to_str().unwrap(),
        "--out",
        o.to_str().unwrap(),
        "--points",
        "50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("4 meshes") && text.contains("2 classes") && text.contains("1 skipped"),
        "{text}"
    );
    let out = run(&["data", "inspect", o.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 classes"));
    // Provenance: every shape names its mesh; the tetrahedra are closed, so have an outside.
    let sources = tensor_frames::datasets::read_sources(&o).unwrap().unwrap();
    assert_eq!(sources.len(), 3);
    let meshes: Vec<&str> = sources.values().map(|s| s.mesh.as_str()).collect();
    for m in ["a.off", "b.off", "c.off"] {
        assert!(meshes.iter().any(|x| x.ends_with(m)), "{meshes:?}");
    }
    assert!(sources.values().all(|s| s.has_outside()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_writes_oriented_normals_with_winding_orientation() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (
        dir.path().join("ball.xyz"),
        dir.path().join("ball_normals.xyz"),
    );
    // A sphere of radius 40 around (7, -3, 2), with its exact normals as columns 4-6.
    let cloud = tf_testing::strategies::PointCloud::sphere(1500);
    let text: String = cloud
        .coords
        .chunks(3)
        .map(|u| {
            format!(
                "{} {} {} {} {} {}\n",
                7.0 + 40.0 * u[0],
                -3.0 + 40.0 * u[1],
                2.0 + 40.0 * u[2],
                u[0],
                u[1],
                u[2]
            )
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let o = run(&[
        "predict",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--winding",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("winding-number orientation:"), "{stdout}");
    let written = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<f64>> = written
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 1500);
    // Oriented agreement with the exact normals: the sphere is the easiest closed surface.
    let cos = rows
        .iter()
        .zip(cloud.coords.chunks(3))
        .map(|(r, u)| r[3] * u[0] + r[4] * u[1] + r[5] * u[2])
        .sum::<f64>()
        / 1500.0;
    assert!(cos > 0.95, "mean cos {cos}");
    // Writing over the input (directly or through a link) is refused, and the input survives.
    let before = std::fs::read(&input).unwrap();
    let link = dir.path().join("link.xyz");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for target in [&input, &link] {
        let o = run(&[
            "predict",
            "--input",
            input.to_str().unwrap(),
            "--out",
            target.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("is the input"), "{err}");
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn the_nbody_network_is_equivariant_in_2_3_and_4_dimensions() {
    for dim in ["2", "3", "4"] {
        let out = run(&[
            "equivariance",
            "--model",
            "nbody-gnn",
            "--dim",
            dim,
            "--trials",
            "2",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let err = v["max_rel_error"].as_f64().unwrap();
        assert!(err <= 1e-9, "d = {dim}: relative error {err:.3e}");
        assert_eq!(v["layer"].as_str(), Some("nbody-gnn"));
    }
    // Identity frames are the non-equivariant control.
    let out = run(&[
        "equivariance",
        "--model",
        "nbody-gnn",
        "--frames",
        "identity",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["max_rel_error"].as_f64().unwrap() > 1e-3);
}

#[test]
fn ill_conditioned_high_dimensional_frames_are_flagged() {
    let out = run(&[
        "equivariance",
        "--layer",
        "gcn",
        "--dim",
        "32",
        "--trials",
        "1",
        "--in-reps",
        "4x0n+2x1n",
        "--hidden-reps",
        "4x0n+2x1n",
        "--out-reps",
        "2x0n+1x1n",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = v["max_rel_error"].as_f64().unwrap();
    let warned =
        String::from_utf8_lossy(&out.stderr).contains("warning: relative equivariance error");
    // The warning appears exactly when the error is above the threshold.
    assert_eq!(warned, err > 1e-9, "error {err:.2e}");
    // d = 3 stays far below it, silently.
    let out = run(&["equivariance", "--layer", "gcn", "--dim", "3", "--json"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

/// Issue 31, items 8 and 10: a rewritten dataset folder holds exactly the new shapes (built
/// aside and renamed in), a folder of someone else's files is not replaced, and `data
/// inspect` reads every shape of a folder and any file predict reads, naming bad ones.
#[test]
fn data_folders_are_replaced_whole_and_inspected_fully() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    let ds_s = ds.to_str().unwrap();
    let count = |p: &std::path::Path| {
        walk(p)
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "txt"))
            .filter(|f| {
                let n = f.file_name().unwrap().to_string_lossy().to_string();
                !n.starts_with("synthetic_")
            })
            .count()
    };
    for (per_class, want) in [("3", 60), ("1", 20)] {
        let out = run(&[
            "data",
            "synth",
            "--out",
            ds_s,
            "--shapes-per-class",
            per_class,
            "--points",
            "32",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(count(&ds), want, "shapes per class {per_class}");
    }
    let out = run(&["data", "inspect", ds_s]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("20 shapes read"));
    // Corrupt the last shape of the folder: inspect names it and fails.
    let mut shapes: Vec<_> = walk(&ds)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("_00"))
        .collect();
    shapes.sort();
    let last = shapes.last().unwrap().clone();
    std::fs::write(&last, "1 2\n").unwrap();
    let out = run(&["data", "inspect", ds_s]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(last.file_name().unwrap().to_str().unwrap())
    );
    // A folder of other files is not replaced.
    let other = dir.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let out = run(&[
        "data",
        "synth",
        "--out",
        other.to_str().unwrap(),
        "--points",
        "32",
    ]);
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "keep me"
    );
    // Any file predict reads: 3-column text (a NaN row named by its line), a PCD with a hole.
    let xyz = dir.path().join("p.xyz");
    std::fs::write(&xyz, "0 0 0\n1 0 0\n0 1 0\n").unwrap();
    let out = run(&["data", "inspect", xyz.to_str().unwrap()]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("3 points"));
    std::fs::write(&xyz, "0 0 0\n1 0 0\n0 1 0\nnan 0 0\n").unwrap();
    let out = run(&["data", "inspect", xyz.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("p.xyz:4"));
    let pcd = dir.path().join("p.pcd");
    let hole = "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 2\nDATA ascii\n0 0 0\nnan nan nan\n";
    std::fs::write(&pcd, hole).unwrap();
    let out = run(&["data", "inspect", pcd.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("1 of 2 points with a non-finite"),
        "{text}"
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
