//! A run interrupted after any epoch and resumed ends with exactly the metrics and weights of
//! an uninterrupted run; repeated runs with one seed are identical.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tf_datasets::{InMemory, Split, Synthetic, SyntheticSplit};
use tf_models::{InputFeatures, ModelConfig, PcaOrientation};
use tf_train::{train, EpochRecord, Run, RunConfig, Session, TrainError};

fn run(dir: &std::path::Path, preset: &str) -> Run {
    let data = Synthetic {
        shapes_per_class: 1,
        points: 96,
        noise: 0.0,
        warp: 0.0,
        seed: 5,
    };
    let train_set =
        Arc::new(InMemory::collect(&SyntheticSplit(data.clone(), Split::Train)).unwrap());
    let val = Arc::new(
        InMemory::collect(&SyntheticSplit(data, Split::Test))
            .unwrap()
            .truncated(4),
    );
    let mut config = RunConfig::preset(preset, 3).unwrap();
    config.train.epochs = 3;
    config.train.batch_size = 4;
    config.train.points = 64;
    config.train.warmup_steps = 2;
    config.train.noise = 0.01;
    config.train.keep_last = 2;
    config.train.progress = false;
    config.train.seed = 11;
    Run {
        dir: dir.to_path_buf(),
        config,
        train: train_set,
        val: Some(val),
    }
}

fn without_time(h: &[EpochRecord]) -> Vec<EpochRecord> {
    h.iter()
        .cloned()
        .map(|mut r| {
            r.seconds = 0.0;
            r
        })
        .collect()
}

fn weights(model: &tf_models::Model) -> Vec<(String, Vec<f32>)> {
    let data = model.varmap().data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn killed_then_resumed_run_matches_an_uninterrupted_one() {
    // Random global frames (the augmentation control) and noise exercise every random stream.
    let preset = "pointnet2-normals-augmentation";
    let a_dir = tempfile::tempdir().unwrap();
    let full = train(&run(a_dir.path(), preset), Session::default()).unwrap();
    assert_eq!(full.history.len(), 3);
    assert!(full
        .history
        .iter()
        .all(|r| r.train_loss.is_finite() && r.val["cos"].is_finite()));

    let b_dir = tempfile::tempdir().unwrap();
    let b = run(b_dir.path(), preset);
    let first = train(
        &b,
        Session {
            stop_after: Some(1),
        },
    )
    .unwrap();
    assert_eq!(first.history.len(), 1);
    let second = train(
        &b,
        Session {
            stop_after: Some(2),
        },
    )
    .unwrap();
    assert_eq!(second.resumed_from, 1);
    // A session killed after writing epoch 3's metrics line but before its checkpoint.
    let metrics = b_dir.path().join("metrics.jsonl");
    let mut ghost = second.history[1].clone();
    ghost.epoch = 3;
    ghost.train_loss = 123.0;
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str(&serde_json::to_string(&ghost).unwrap());
    text.push('\n');
    std::fs::write(&metrics, text).unwrap();
    // ... and a half-written checkpoint directory.
    std::fs::create_dir_all(b_dir.path().join("checkpoints/.epoch-0003.tmp")).unwrap();

    let resumed = train(&b, Session::default()).unwrap();
    assert_eq!(resumed.resumed_from, 2);
    assert_eq!(without_time(&resumed.history), without_time(&full.history));
    assert_eq!(weights(&resumed.model), weights(&full.model));
    let on_disk: Vec<EpochRecord> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(without_time(&on_disk), without_time(&full.history));

    // keep_last = 2, plus best/.
    let kept: Vec<_> = std::fs::read_dir(b_dir.path().join("checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(b_dir.path().join("best/model.safetensors").is_file());

    // A finished run returns at once with its history; the checkpoint loads as a model.
    let again = train(&b, Session::default()).unwrap();
    assert_eq!(again.resumed_from, 3);
    assert_eq!(without_time(&again.history), without_time(&full.history));
    let loaded = tf_train::load_model(b_dir.path(), candle_core::DType::F32).unwrap();
    assert_eq!(loaded.params(), full.model.params());
}

#[test]
fn fixed_seed_gives_identical_runs_and_a_changed_config_is_refused() {
    let preset = "pointnet2-normals";
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut rx = run(x.path(), preset);
    rx.config.train.epochs = 1;
    let mut ry = run(y.path(), preset);
    ry.config.train.epochs = 1;
    let hx = train(&rx, Session::default()).unwrap();
    let hy = train(&ry, Session::default()).unwrap();
    assert_eq!(without_time(&hx.history), without_time(&hy.history));
    assert_eq!(weights(&hx.model), weights(&hy.model));

    rx.config.train.lr *= 2.0;
    match train(&rx, Session::default()) {
        Err(TrainError::Config(m)) => assert!(m.contains("different configuration"), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn fine_tuning_starts_from_the_given_weights_and_refuses_another_model() {
    let preset = "pointnet2-normals";
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut ra = run(a.path(), preset);
    ra.config.train.epochs = 1;
    let base = train(&ra, Session::default()).unwrap();

    // Another seed, and a learning rate so small that one epoch cannot move the weights: the
    // run must end where the initial checkpoint was, not at its own seeded initialisation.
    let mut rb = run(b.path(), preset);
    rb.config.train.epochs = 1;
    rb.config.train.seed = 99;
    rb.config.train.lr = 1e-12;
    rb.config.train.init = Some(a.path().to_path_buf());
    let tuned = train(&rb, Session::default()).unwrap();
    let (wa, wb) = (weights(&base.model), weights(&tuned.model));
    assert_eq!(wa.len(), wb.len());
    let worst = wa
        .iter()
        .zip(&wb)
        .flat_map(|((na, va), (nb, vb))| {
            assert_eq!(na, nb);
            va.iter().zip(vb).map(|(x, y)| (x - y).abs())
        })
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "fine-tuned weights moved by {worst}");
    // Without `init` the same run starts elsewhere.
    rb.config.train.init = None;
    rb.dir = c.path().to_path_buf();
    let fresh = train(&rb, Session::default()).unwrap();
    assert_ne!(weights(&fresh.model), wa);

    // Weights of another model are refused with the path named.
    let d = tempfile::tempdir().unwrap();
    let mut rc = run(d.path(), "dgcnn-normals");
    rc.config.train.init = Some(a.path().to_path_buf());
    match train(&rc, Session::default()) {
        Err(TrainError::Checkpoint(m)) => assert!(m.contains("train.init"), "{m}"),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    // So is a path that holds nothing.
    let mut rd = run(d.path(), preset);
    rd.config.train.init = Some(d.path().join("missing"));
    match train(&rd, Session::default()) {
        Err(TrainError::Checkpoint(m)) => {
            assert!(m.contains("train.init") && m.contains("missing"), "{m}")
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

/// The bundled estimator's stages fine-tune across input changes: another way of signing the
/// PCA estimates (winding coarse to fine, visibility) keeps every weight's shape and loads as
/// it is; added confidence, offset or visibility-score scalars widen only the layers that read
/// the features.
#[test]
fn fine_tuning_across_input_feature_changes() {
    let (a, b, c, o) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (v, s) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vc = tempfile::tempdir().unwrap();
    // The bundled estimator's input variants (configs/normals-real*.toml) on pointnet2-normals.
    let with_input = |dir: &std::path::Path, orient, confidence, offset, visibility| {
        let mut r = run(dir, "pointnet2-normals");
        let input = InputFeatures::multiscale(orient).with_scalars(confidence, offset, visibility);
        if let ModelConfig::Pointnet2(m) = &mut r.config.model {
            m.input = input;
        }
        r
    };
    use PcaOrientation::*;
    let mut ra = with_input(a.path(), Winding, false, false, false);
    ra.config.train.epochs = 1;
    let base = train(&ra, Session::default()).unwrap();
    let wa = weights(&base.model);
    for (dir, preset, (orient, confidence, offset, visibility), widens) in [
        (
            b.path(),
            "winding-coarse",
            (WindingCoarse, false, false, false),
            false,
        ),
        (
            c.path(),
            "winding-confidence",
            (WindingCoarse, true, false, false),
            true,
        ),
        (
            o.path(),
            "winding-offset",
            (WindingCoarse, false, true, false),
            true,
        ),
        (
            v.path(),
            "visibility",
            (Visibility, false, false, false),
            false,
        ),
        (
            vc.path(),
            "visibility-confident",
            (VisibilityConfident, false, false, false),
            false,
        ),
        (
            s.path(),
            "winding-visibility-score",
            (WindingCoarse, false, false, true),
            true,
        ),
    ] {
        let mut rb = with_input(dir, orient, confidence, offset, visibility);
        rb.config.train.epochs = 1;
        rb.config.train.lr = 1e-12;
        rb.config.train.init = Some(a.path().to_path_buf());
        let tuned = train(&rb, Session::default()).unwrap();
        let wb = weights(&tuned.model);
        assert_eq!(wa.len(), wb.len());
        let mut grown = Vec::new();
        for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
            assert_eq!(na, nb);
            if va.len() != vb.len() {
                assert!(vb.len() > va.len(), "{preset}: {na} shrank");
                grown.push(na.as_str());
            }
        }
        let want: &[&str] = if widens {
            &["fp.2.0.weight", "sa.0.0.weight"]
        } else {
            &[]
        };
        assert_eq!(grown, want, "{preset}");
    }
}

/// Early stopping ends a run `patience` epochs after its last new best validation value, and a
/// resumed run that already stopped stays stopped. With a learning rate too small to change an
/// f32 weight, the validation value never improves after the first epoch.
#[test]
fn early_stopping_ends_the_run_after_patience_epochs_without_a_new_best() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run(dir.path(), "pointnet2-normals");
    r.config.train.epochs = 10;
    r.config.train.lr = 1e-30;
    r.config.train.patience = 2;
    let first = train(&r, Session::default()).unwrap();
    assert_eq!(
        first.history.len(),
        3,
        "epoch 1 is the best, 2 and 3 exhaust the patience"
    );
    assert!(first.stopped_early);
    assert_eq!(first.best.map(|b| b.0), Some(1));
    let again = train(&r, Session::default()).unwrap();
    assert_eq!(again.history.len(), 3);
    assert!(again.stopped_early);
    assert_eq!(without_time(&again.history), without_time(&first.history));
    // Without patience the same run trains every epoch.
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = run(full_dir.path(), "pointnet2-normals");
    full.config.train.epochs = 4;
    full.config.train.lr = 1e-30;
    let out = train(&full, Session::default()).unwrap();
    assert_eq!(out.history.len(), 4);
    assert!(!out.stopped_early);
}

/// One training per run folder: while one holds it, a second fails at once and names the
/// holder; a lock left by a process that is gone is taken over; a finished run leaves none.
#[test]
fn a_second_training_into_a_busy_folder_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run(dir.path(), "pointnet2-normals");
    r.config.train.epochs = 1;
    std::fs::create_dir_all(dir.path()).unwrap();
    let held = tf_train::RunLock::acquire(dir.path()).unwrap();
    let start = std::time::Instant::now();
    match train(&r, Session::default()) {
        Err(TrainError::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!(
            "expected a lock error, got {:?}",
            other.map(|o| o.history.len())
        ),
    }
    assert!(
        start.elapsed().as_secs_f64() < 1.0,
        "it must fail before training"
    );
    assert!(!dir.path().join("metrics.jsonl").exists());
    drop(held);
    // A stale lock (no such process) is taken over.
    std::fs::write(dir.path().join(tf_train::LOCK_FILE), "4000000000\n").unwrap();
    let out = train(&r, Session::default()).unwrap();
    assert_eq!(out.history.len(), 1);
    assert!(!dir.path().join(tf_train::LOCK_FILE).exists());
    // Two threads at once: exactly one trains.
    let dir2 = tempfile::tempdir().unwrap();
    let mut r2 = run(dir2.path(), "pointnet2-normals");
    // Long enough that the loser reaches the lock while the winner still trains.
    r2.config.train.epochs = 20;
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<bool> = std::thread::scope(|s| {
        let go = || {
            barrier.wait();
            train(&r2, Session::default()).is_ok()
        };
        let (a, b) = (s.spawn(go), s.spawn(go));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(results.iter().filter(|&&ok| ok).count(), 1, "{results:?}");
}

/// A damaged newest checkpoint (weights overwritten with zeros, or truncated) is detected by
/// its checksum: resuming falls back to the previous intact checkpoint and ends where an
/// uninterrupted run ends; loading the damaged checkpoint is an error.
#[test]
fn a_damaged_latest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = train(
        &run(&tmp.path().join("whole"), "pointnet2-normals"),
        Session::default(),
    )
    .unwrap();
    for damage in ["zeros", "truncate"] {
        let dir = tmp.path().join(damage);
        let r = run(&dir, "pointnet2-normals");
        train(
            &r,
            Session {
                stop_after: Some(2),
            },
        )
        .unwrap();
        let latest = dir.join("checkpoints").join("epoch-0002");
        let file = latest.join("model.safetensors");
        let bytes = std::fs::read(&file).unwrap();
        let damaged = if damage == "zeros" {
            // Same length, header kept, data zeroed: only a checksum can tell.
            let mut b = bytes.clone();
            let len = b.len();
            b[len / 2..].iter_mut().for_each(|x| *x = 0);
            b
        } else {
            bytes[..bytes.len() / 2].to_vec()
        };
        std::fs::write(&file, damaged).unwrap();
        let err = tf_train::load_model(&latest, candle_core::DType::F32)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("damaged"), "{damage}: {err}");
        let (dir_found, state) = tf_train::checkpoint::latest(&dir).unwrap().unwrap();
        assert_eq!(state.epoch, 1, "{damage}: {}", dir_found.display());
        let resumed = train(&r, Session::default()).unwrap();
        assert_eq!(
            without_time(&resumed.history),
            without_time(&whole.history),
            "{damage}"
        );
        assert_eq!(weights(&resumed.model), weights(&whole.model), "{damage}");
    }
}
