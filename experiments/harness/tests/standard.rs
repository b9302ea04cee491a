//! Standard mode's run summaries: a finished run writes one, a rerun with the same
//! configuration reuses it without training (here: after its training runs were deleted), and
//! another configuration trains anew. The tested weights are the best validation epoch's.
#![allow(clippy::unwrap_used)]

use tf_experiments::{Args, Ctx, Mode, Task};
use tf_train::{DataConfig, RunConfig};

#[test]
fn standard_runs_write_summaries_that_reruns_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let args = Args::for_mode(
        Mode::Standard,
        &dir.path().join("out"),
        &dir.path().join("runs"),
    );
    let data = DataConfig::Synthetic {
        train_per_class: 1,
        test_per_class: 1,
        points: 96,
        seed: 3,
        warp: 0.0,
    };
    let train = |ctx: &mut Ctx, lr: f64| {
        let model = ctx
            .model("pointnet2-normals", 3, &data, Task::Normals)
            .unwrap();
        let mut t = ctx.train_config();
        t.epochs = 3;
        t.patience = 1;
        t.points = 64;
        t.batch_size = 5;
        t.warmup_steps = 1;
        t.lr = lr;
        let config = RunConfig {
            model,
            train: t,
            data: data.clone(),
        };
        ctx.run_summary("row", config, None).unwrap()
    };
    let mut ctx = Ctx::new(&args, "standard-test").unwrap();
    let first = train(&mut ctx, 1e-3);
    assert!(first.epochs >= 1 && first.epochs <= 3);
    assert!(first.best_epoch >= 1 && first.best_epoch <= first.epochs);
    assert_eq!(first.val["cos"], first.curve[first.best_epoch - 1].1);
    assert!(first.canonical.contains_key("cos") && first.rotated.contains_key("abs_cos"));
    let files: Vec<_> = std::fs::read_dir(&args.summaries).unwrap().collect();
    assert_eq!(files.len(), 1);

    // The summary is all a rerun needs: the training runs are gone and nothing retrains.
    std::fs::remove_dir_all(&args.runs).unwrap();
    let mut again = Ctx::new(&args, "standard-test").unwrap();
    assert_eq!(train(&mut again, 1e-3), first);
    assert!(!args.runs.exists(), "a reused summary must not train");

    // Another learning rate is another configuration: trained, and summarised beside it.
    let other = train(&mut again, 3e-4);
    assert_ne!(other.config_hash, first.config_hash);
    assert_eq!(std::fs::read_dir(&args.summaries).unwrap().count(), 2);
}
