//! The N-body experiment: the binary end to end in smoke mode, resuming a run bit for bit,
//! evaluating a trained run on the published generator's `.npy` files (written here), and
//! clear errors for bad `.npy` files.

use std::path::Path;

use candle_core::DType;
use nbody::data::{self, Samples};
use nbody::fit::{fit, fit_for, FitConfig};
use tf_datasets::{published_name, read_published, ChargedNBody};
use tf_models::{FrameChoice, NBodyConfig};

#[test]
fn smoke_run_writes_the_table() -> anyhow::Result<()> {
    // Linear + 5 trained rows + 10 published rows.
    let (json, _dir) = tf_experiments::smoke_test(env!("CARGO_BIN_EXE_nbody"), "nbody", 16)?;
    let rows = json["report"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let egnn = rows
        .iter()
        .find(|r| r["label"].as_str() == Some("EGNN (published)"))
        .map(|r| r["cells"][1].as_f64());
    assert_eq!(egnn, Some(Some(0.0071)));
    Ok(())
}

/// `--summaries-only` trains nothing and says the table is incomplete. (Smoke mode reuses no
/// summaries, so every planned run is missing: only the linear and published rows remain.)
#[test]
fn summaries_only_trains_nothing_and_marks_the_table_incomplete() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("results");
    let runs = dir.path().join("runs");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_nbody"))
        .args(["--smoke", "--summaries-only", "--out"])
        .arg(&out)
        .arg("--runs")
        .arg(&runs)
        .status()?;
    assert!(status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("nbody.json"))?)?;
    let verdict = json["report"]["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.starts_with("Incomplete: 5 of the 5 planned runs"),
        "{verdict}"
    );
    // Linear + 10 published rows, no trained one.
    assert_eq!(json["report"]["rows"].as_array().map_or(0, Vec::len), 11);
    assert!(!runs.exists() || std::fs::read_dir(&runs)?.next().is_none());
    Ok(())
}

fn small_config(seed: u64, max_epochs: usize) -> FitConfig {
    let mut model = NBodyConfig::new(3);
    model.layers = 2;
    model.hidden = 16;
    model.scalars = 8;
    model.vectors = 2;
    model.frames.kind = FrameChoice::Learned;
    FitConfig {
        model,
        lr: 1e-3,
        batch: 10,
        max_epochs,
        eval_every: 2,
        patience: 100,
        seed,
        data: "test".into(),
    }
}

#[test]
fn a_resumed_run_computes_what_an_uninterrupted_one_does() -> anyhow::Result<()> {
    let splits = data::simulated(3, [30, 10, 10])?;
    let cfg = small_config(1, 6);
    let dir = tempfile::tempdir()?;
    let whole = fit(&cfg, &splits, &dir.path().join("whole"), DType::F32)?;
    assert!(whole.state.done && whole.state.epoch == 6);
    let parts = dir.path().join("parts");
    let first = fit_for(
        &cfg,
        &splits,
        &parts,
        DType::F32,
        &candle_core::Device::Cpu,
        3,
    )?;
    // The sitting ends at the first checkpoint after 3 epochs.
    assert_eq!((first.state.epoch, first.state.done), (4, false));
    let rest = fit(&cfg, &splits, &parts, DType::F32)?;
    assert_eq!(rest.state.history, whole.state.history);
    assert_eq!(rest.state.test_at_best, whole.state.test_at_best);
    // A finished run is returned as it is; another configuration is refused.
    assert_eq!(
        fit(&cfg, &splits, &parts, DType::F32)?.state.history,
        whole.state.history
    );
    let err = fit(&small_config(2, 6), &splits, &parts, DType::F32)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("another configuration"), "{err}");
    Ok(())
}

/// A float64 `.npy` file (format 1.0, C order).
fn write_npy(path: &Path, shape: &[usize], data: &[f64]) {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write npy");
}

/// Writes `systems` simulated systems as the published generator lays them out.
fn write_published(
    folder: &Path,
    split: &str,
    systems: usize,
    seed: u64,
) -> Vec<tf_datasets::Trajectory> {
    let sim = ChargedNBody::default();
    let t = sim.dataset(systems, seed);
    let (frames, d, n) = (t[0].frames(), 3, 5);
    let mut loc = vec![0.0; systems * frames * d * n];
    let mut vel = loc.clone();
    let mut q = Vec::new();
    for (s, tr) in t.iter().enumerate() {
        for f in 0..frames {
            for p in 0..n {
                for a in 0..d {
                    let at = ((s * frames + f) * d + a) * n + p;
                    loc[at] = tr.loc_at(f)[p * d + a];
                    vel[at] = tr.vel_at(f)[p * d + a];
                }
            }
        }
        q.extend_from_slice(&tr.charges);
    }
    write_npy(
        &folder.join(published_name("loc", split)),
        &[systems, frames, d, n],
        &loc,
    );
    write_npy(
        &folder.join(published_name("vel", split)),
        &[systems, frames, d, n],
        &vel,
    );
    write_npy(
        &folder.join(published_name("charges", split)),
        &[systems, n, 1],
        &q,
    );
    t
}

#[test]
fn a_trained_run_is_evaluated_on_published_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("published");
    std::fs::create_dir_all(&folder)?;
    let written = write_published(&folder, "test", 4, 7);
    // The files read back as the trajectories they were written from.
    assert_eq!(read_published(&folder, "test")?, written);
    let splits = data::simulated(3, [20, 10, 10])?;
    let run = dir.path().join("run");
    fit(&small_config(0, 2), &splits, &run, DType::F32)?;
    let (mse, n) = nbody::evaluate_published(&run, &folder, "test", &candle_core::Device::Cpu)?;
    assert_eq!(n, 4);
    let net = nbody::fit::load(&run, DType::F64)?;
    let expected =
        nbody::fit::evaluate(&net, &Samples::from_trajectories(&written)?, DType::F64, 3)?;
    assert!(
        (mse - expected).abs() <= 1e-12 * expected.max(1.0),
        "{mse} vs {expected}"
    );
    // The binary prints the same number as JSON.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nbody"))
        .args(["--evaluate"])
        .arg(&run)
        .arg("--data")
        .arg(&folder)
        .arg("--json")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["systems"].as_u64(), Some(4));
    let printed = json["mse"].as_f64().unwrap_or(f64::NAN);
    assert!((printed - mse).abs() <= 1e-12 * mse.max(1.0));
    Ok(())
}

#[test]
fn bad_npy_files_are_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = dir.path();
    write_published(f, "test", 2, 3);
    let loc = f.join(published_name("loc", "test"));
    let good = std::fs::read(&loc)?;
    let read_err = || {
        read_published(f, "test")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no error".into())
    };
    // Truncated data.
    std::fs::write(&loc, &good[..good.len() - 100])?;
    let e = read_err();
    assert!(e.contains("loc_test"), "{e}");
    // Not an npy file at all.
    std::fs::write(&loc, b"hello")?;
    let e = read_err();
    assert!(e.contains("loc_test"), "{e}");
    // Wrong rank.
    write_npy(&loc, &[2, 49 * 3 * 5], &vec![0.0; 2 * 49 * 15]);
    let e = read_err();
    assert!(e.contains("loc_test"), "{e}");
    // Integer dtype.
    let mut ints = good.clone();
    let pos = ints.windows(3).position(|w| w == b"<f8").unwrap_or(0);
    ints[pos..pos + 3].copy_from_slice(b"<i8");
    std::fs::write(&loc, &ints)?;
    let e = read_err();
    assert!(e.contains("loc_test"), "{e}");
    // Charges of the wrong shape.
    std::fs::write(&loc, &good)?;
    write_npy(
        &f.join(published_name("charges", "test")),
        &[2, 4, 1],
        &[1.0; 8],
    );
    let e = read_err();
    assert!(e.contains("charges"), "{e}");
    // A missing file names itself.
    std::fs::remove_file(&loc)?;
    let e = read_err();
    assert!(e.contains("loc_test"), "{e}");
    Ok(())
}

#[test]
fn the_linear_floor_fits_constant_velocity() -> anyhow::Result<()> {
    let splits = data::simulated(3, [50, 10, 10])?;
    let (tau, mse) = splits.train.linear_fit();
    // 1,000 steps of 0.001: the constant-velocity time is about 1; forces bend the paths.
    assert!((0.5..1.5).contains(&tau), "tau {tau}");
    assert!(mse > 0.0 && mse < splits.train.linear_mse(0.0));
    // Too few frames is an error, not a panic.
    let short = ChargedNBody {
        steps: 1000,
        ..ChargedNBody::default()
    }
    .dataset(1, 0);
    let e = Samples::from_trajectories(&short)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("frame 40"), "{e}");
    Ok(())
}
