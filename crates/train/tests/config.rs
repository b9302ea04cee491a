//! Configuration layering: preset defaults <- TOML <- TF_* environment <- command-line flags,
//! and clear errors for bad values and unknown keys.
#![allow(clippy::unwrap_used)]

use tf_train::{DataConfig, RunConfig, TrainError};

#[test]
fn layers_merge_in_order_and_bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(
        &file,
        "[train]\nepochs = 7\nlr = 0.01\nbatch_size = 3\n[model.frames]\nkind = \"pca\"\n",
    )
    .unwrap();
    // Only this test touches these variables.
    std::env::set_var("TF_TRAIN__BATCH_SIZE", "5");
    std::env::set_var("TF_MODEL__FRAMES__K", "12");
    std::env::set_var("TF_STEP_GRAPHS", "9"); // not ours: ignored
    let base = RunConfig::preset("pointnet2-normals", 3).unwrap();
    let cfg = RunConfig::load(
        base.clone(),
        Some(&file),
        serde_json::json!({"train": {"lr": 0.002}}),
    )
    .unwrap();
    std::env::remove_var("TF_TRAIN__BATCH_SIZE");
    std::env::remove_var("TF_MODEL__FRAMES__K");
    std::env::remove_var("TF_STEP_GRAPHS");
    assert_eq!(cfg.train.epochs, 7); // file
    assert_eq!(cfg.train.batch_size, 5); // env beats file
    assert_eq!(cfg.train.lr, 0.002); // flag beats file
    assert_eq!(cfg.train.points, base.train.points); // default
    let json = serde_json::to_value(&cfg.model).unwrap();
    assert_eq!(json["frames"]["kind"], "pca");
    assert_eq!(json["frames"]["k"], 12);

    let bad = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        match RunConfig::load(base.clone(), Some(&file), serde_json::json!({})) {
            Err(TrainError::Config(m)) => m,
            other => panic!("{toml:?} should be refused, got {other:?}"),
        }
    };
    assert!(bad("[train]\nepoch = 3\n").contains("epoch"));
    assert!(bad("[train]\nlr = -1.0\n").contains("lr"));
    assert!(bad("[train]\naugment = \"spin\"\n").contains("spin"));
    assert!(bad("[data]\nkind = \"synthetic-nd\"\nd = 4\ntrain_per_class = 1\ntest_per_class = 1\npoints = 10\nseed = 0\n").contains("dimension"));
    assert!(bad("[train\n").contains("TOML") || !bad("[train\n").is_empty());
    assert!(bad("[data]\nkind = \"synthetic\"\ntrain_per_class = 1\ntest_per_class = 1\npoints = 10\nseed = 0\nwarp = 1.5\n").contains("warp"));
    let missing = RunConfig::load(
        base.clone(),
        Some(&dir.path().join("nope.toml")),
        serde_json::json!({}),
    );
    assert!(matches!(missing, Err(TrainError::Config(m)) if m.contains("does not exist")));
    assert!(matches!(
        DataConfig::default(),
        DataConfig::Synthetic { .. }
    ));
    // An unwarped set saves without the key, so the hashes of existing runs stay the same.
    let saved = serde_json::to_string(&DataConfig::default()).unwrap();
    assert!(!saved.contains("warp"), "{saved}");
}

#[test]
fn another_data_kind_replaces_the_default_section() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(
        &file,
        "[data]\nkind = \"many\"\n[[data.sources]]\nkind = \"modelnet\"\npath = \"x\"\n[[data.sources]]\nkind = \"synthetic\"\ntrain_per_class = 2\ntest_per_class = 1\npoints = 64\nseed = 0\n",
    )
    .unwrap();
    let base = RunConfig::preset("pointnet2-normals", 3).unwrap();
    let cfg = RunConfig::load(base, Some(&file), serde_json::json!({})).unwrap();
    match cfg.data {
        DataConfig::Many { sources } => assert_eq!(sources.len(), 2),
        other => panic!("{other:?}"),
    }
}

/// `[train] device` (or `--device`): cpu by default and left out of the saved configuration
/// (so run hashes of CPU runs do not change), a GPU by name, an unknown name refused.
#[test]
fn the_device_is_configured_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    let base = RunConfig::preset("pointnet2-normals", 3).unwrap();
    assert!(base.train.device.is_cpu());
    assert!(serde_json::to_value(&base.train)
        .unwrap()
        .get("device")
        .is_none());
    std::fs::write(&file, "[train]\ndevice = \"cuda:1\"\n").unwrap();
    let cfg = RunConfig::load(base.clone(), Some(&file), serde_json::json!({})).unwrap();
    assert_eq!(cfg.train.device, tf_models::DeviceChoice::Cuda(1));
    let cfg = RunConfig::load(
        base.clone(),
        None,
        serde_json::json!({"train": {"device": "metal"}}),
    )
    .unwrap();
    assert_eq!(cfg.train.device.to_string(), "metal:0");
    std::fs::write(&file, "[train]\ndevice = \"tpu\"\n").unwrap();
    let err = RunConfig::load(base, Some(&file), serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tpu"), "{err}");
}
