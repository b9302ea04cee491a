//! Every model preset with learned frames is O(d)-equivariant (normals rotate with the input,
//! logits are invariant) including reflections and translations, in f64, and permutation
//! equivariant in the points; the plain preset (identity frames) fails the same check.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use tf_group::TensorReps;
use tf_models::{
    compute_features, Batch, HeadConfig, InputFeatures, Model, ModelConfig, PcaOrientation, PRESETS,
};
use tf_testing::strategies::{self, PointCloud};
use tf_testing::{
    config, equivariance_error, prop_assert_equivariant, reseed_varmap, Declared, Kind, Transform,
};

const TOL: f64 = 1e-9;

/// A preset, or `pointnet2-normals` with one of the input-feature variants the bundled normal
/// estimator was trained with or tried (its `configs/normals-real*.toml` files), named
/// `pointnet2-normals-<variant>`.
fn model_config(name: &str, d: usize) -> ModelConfig {
    use PcaOrientation::*;
    let variant = |orient, confidence, offset, visibility| {
        InputFeatures::multiscale(orient).with_scalars(confidence, offset, visibility)
    };
    let input = match name.strip_prefix("pointnet2-normals-") {
        Some("pca-multiscale") => variant(Centroid, false, false, false),
        Some("pca-winding") => variant(Winding, false, false, false),
        Some("pca-winding-coarse") => variant(WindingCoarse, false, false, false),
        Some("pca-winding-confidence") => variant(WindingCoarse, true, false, false),
        Some("pca-winding-offset") => variant(WindingCoarse, false, true, false),
        Some("pca-visibility") => variant(Visibility, false, false, false),
        Some("pca-visibility-confident") => variant(VisibilityConfident, false, false, false),
        Some("pca-winding-visibility-score") => variant(WindingCoarse, false, false, true),
        _ => return ModelConfig::preset(name, d).unwrap(),
    };
    let mut c = ModelConfig::preset("pointnet2-normals", d).unwrap();
    if let ModelConfig::Pointnet2(p) = &mut c {
        p.input = input;
    }
    c
}

fn model(preset: &str, d: usize, seed: u64) -> Model {
    let m = Model::new(model_config(preset, d), DType::F64, &Device::Cpu).unwrap();
    reseed_varmap(m.varmap(), seed, 0.3).unwrap();
    m
}

/// Two shapes of `n` points each in `[-0.5, 0.5]^d`, and their batch vector.
fn shapes(d: usize, n: usize, seed: u64) -> (Tensor, Tensor) {
    let pos = (PointCloud::uniform(d, 2 * n, seed)
        .tensor(DType::F64, &Device::Cpu)
        .unwrap()
        * 0.5)
        .unwrap();
    let ids: Vec<u32> = (0..2 * n as u32).map(|i| i / n as u32).collect();
    (pos, Tensor::new(ids.as_slice(), &Device::Cpu).unwrap())
}

fn output_kind(m: &Model, d: usize) -> Kind {
    let _ = d;
    match m.head() {
        HeadConfig::Normals => Kind::Features(TensorReps::vectors(1)),
        _ => Kind::Invariant,
    }
}

/// The input features a model computes from each cloud (`None` for most presets).
fn features(m: &Model, pos: &Tensor, batch: &Tensor) -> Option<Tensor> {
    compute_features(m.config().input_features(), pos, Some(batch)).unwrap()
}

fn run<'a>(
    m: &'a Model,
    batch: &Tensor,
) -> impl Fn(&[Tensor]) -> candle_core::Result<Vec<Tensor>> + 'a {
    let batch = batch.clone();
    move |xs: &[Tensor]| {
        // Computed input features come from the transformed cloud, as in use.
        let f = features(m, &xs[0], &batch);
        Ok(vec![
            m.forward(&Batch {
                pos: &xs[0],
                batch: Some(&batch),
                features: f.as_ref(),
            })?
            .values,
        ])
    }
}

const EQUIVARIANT: &[&str] = &[
    "pointnet2-normals",
    "pointnet2-normals-ssg",
    "pointnet2-normals-refined",
    "pointnet2-normals-pca",
    "pointnet2-normals-pca-multiscale",
    "pointnet2-normals-pca-winding",
    "pointnet2-normals-pca-winding-coarse",
    "pointnet2-normals-pca-winding-confidence",
    "pointnet2-normals-pca-winding-offset",
    "pointnet2-normals-pca-visibility",
    "pointnet2-normals-pca-visibility-confident",
    "pointnet2-normals-pca-winding-visibility-score",
    "pointnet2-normals-scalar",
    "pointnet2-segmentation",
    "pointnet2-classification",
    "dgcnn-normals",
    "dgcnn-classification",
    "attention-normals",
];

proptest! {
    #![proptest_config(config(4))]

    #[test]
    fn every_equivariant_preset_is_equivariant_in_3d(seed in strategies::seed()) {
        let (pos, batch) = shapes(3, 64, seed);
        for &p in EQUIVARIANT {
            let m = model(p, 3, seed);
            prop_assert!(m.is_equivariant());
            prop_assert_equivariant(&[(Kind::Positions, pos.clone())], &[Declared::new(p, output_kind(&m, 3))], run(&m, &batch), 3, seed, TOL)?;
        }
    }

    /// The path a GPU takes (candle ops instead of the CPU kernels), forced on the CPU.
    #[test]
    fn models_are_equivariant_on_the_portable_path(seed in strategies::seed(), d in prop::sample::select(vec![2usize, 3, 4])) {
        let (pos, batch) = shapes(d, 48, seed);
        // Every equivariant preset in 3D; one per architecture in 2D and 4D.
        let presets: Vec<&str> = if d == 3 {
            EQUIVARIANT.to_vec()
        } else {
            vec!["pointnet2-normals", "pointnet2-normals-refined", "pointnet2-classification", "dgcnn-normals", "attention-normals"]
        };
        for p in presets {
            let m = model(p, d, seed);
            let before = tf_group::portable::portable_calls();
            tf_group::portable::portable(|| prop_assert_equivariant(&[(Kind::Positions, pos.clone())], &[Declared::new(p, output_kind(&m, d))], run(&m, &batch), d, seed, TOL))?;
            prop_assert!(tf_group::portable::portable_calls() > before);
        }
    }

    #[test]
    fn pointnet2_is_equivariant_in_2d_and_4d(seed in strategies::seed(), d in prop::sample::select(vec![2usize, 4])) {
        let (pos, batch) = shapes(d, 64, seed);
        for p in ["pointnet2-normals", "pointnet2-normals-pca", "pointnet2-normals-pca-multiscale", "pointnet2-normals-pca-winding", "pointnet2-normals-pca-winding-coarse", "pointnet2-normals-pca-winding-confidence", "pointnet2-normals-pca-winding-offset", "pointnet2-normals-pca-visibility", "pointnet2-normals-pca-visibility-confident", "pointnet2-normals-pca-winding-visibility-score"] {
            let m = model(p, d, seed);
            prop_assert_equivariant(&[(Kind::Positions, pos.clone())], &[Declared::new(p, output_kind(&m, d))], run(&m, &batch), d, seed, TOL)?;
        }
    }

    #[test]
    fn models_are_permutation_equivariant(seed in strategies::seed()) {
        let n = 64;
        let (pos, batch) = shapes(3, n, seed);
        // a permutation inside each shape, so the batch vector stays sorted
        let perm: Vec<u32> = (0..2 * n as u32).map(|i| (i / n as u32) * n as u32 + ((i % n as u32) * 37 + seed as u32 % 64) % n as u32).collect();
        let perm_t = Tensor::new(perm.as_slice(), &Device::Cpu).unwrap();
        let moved = pos.index_select(&perm_t, 0).unwrap();
        for p in ["pointnet2-normals", "pointnet2-normals-pca", "pointnet2-normals-pca-winding-coarse", "pointnet2-classification", "dgcnn-normals", "attention-normals"] {
            let m = model(p, 3, seed);
            let a = m.forward(&Batch { pos: &pos, batch: Some(&batch), features: features(&m, &pos, &batch).as_ref() }).unwrap().values;
            let b = m.forward(&Batch { pos: &moved, batch: Some(&batch), features: features(&m, &moved, &batch).as_ref() }).unwrap().values;
            let want = if a.dims()[0] == 2 * n { a.index_select(&perm_t, 0).unwrap() } else { a };
            let err = tf_testing::max_rel_diff(&b, &want).unwrap();
            prop_assert!(err <= TOL, "{p}: permutation error {err:e}");
        }
    }
}

#[test]
fn identity_frames_are_detected() {
    let (pos, batch) = shapes(3, 64, 1);
    // The PCA-refining model with identity frames: its inputs are equivariant, the network
    // acting on them in global coordinates is not.
    let identity = |preset: &str| {
        let mut c = model_config(preset, 3);
        c.frames_mut().kind = tf_models::FrameChoice::Identity;
        let m = Model::new(c, DType::F64, &Device::Cpu).unwrap();
        reseed_varmap(m.varmap(), 1, 0.3).unwrap();
        m
    };
    let models = [
        (
            "pointnet2-normals-plain",
            model("pointnet2-normals-plain", 3, 1),
        ),
        (
            "pointnet2-normals-random-frames",
            model("pointnet2-normals-random-frames", 3, 1),
        ),
        (
            "pointnet2-normals-pca, identity frames",
            identity("pointnet2-normals-pca"),
        ),
        (
            "pointnet2-normals-pca-winding, identity frames",
            identity("pointnet2-normals-pca-winding"),
        ),
        (
            "pointnet2-normals-pca-winding-coarse, identity frames",
            identity("pointnet2-normals-pca-winding-coarse"),
        ),
    ];
    for (p, m) in &models {
        assert!(!m.is_equivariant());
        let g = Transform::random(3, 2, -1.0);
        let r = equivariance_error(
            &[(Kind::Positions, pos.clone())],
            &[Declared::new(*p, output_kind(m, 3))],
            run(m, &batch),
            &g,
        )
        .unwrap();
        assert!(r.max_rel_error() > 1e-3, "{p} passed: {r}");
    }
}

#[test]
fn every_preset_builds_runs_and_reports_parameters() {
    let (pos, batch) = shapes(3, 48, 3);
    for p in PRESETS.iter().map(|p| p.name) {
        let m = Model::new(model_config(p, 3), DType::F32, &Device::Cpu).unwrap();
        let pos = pos.to_dtype(DType::F32).unwrap();
        let out = m
            .forward(&Batch {
                pos: &pos,
                batch: Some(&batch),
                features: features(&m, &pos, &batch).as_ref(),
            })
            .unwrap();
        let rows = match m.head() {
            HeadConfig::Classification { .. } => 2,
            _ => 96,
        };
        assert_eq!(out.values.dims()[0], rows, "{p}");
        let v = out.values.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{p}: non-finite output");
        assert!(m.params() > 0);
        assert!(
            m.frame_overhead() < 0.2,
            "{p}: frame overhead {}",
            m.frame_overhead()
        );
    }
}

#[test]
fn gradients_reach_every_weight() {
    let (pos, batch) = shapes(3, 48, 4);
    for p in [
        "pointnet2-normals-refined",
        "pointnet2-normals-pca",
        "dgcnn-classification",
        "attention-normals",
    ] {
        let m = model(p, 3, 5);
        let y = m
            .forward(&Batch {
                pos: &pos,
                batch: Some(&batch),
                features: features(&m, &pos, &batch).as_ref(),
            })
            .unwrap()
            .values;
        let grads = y.sqr().unwrap().mean_all().unwrap().backward().unwrap();
        for (name, var) in m.varmap().data().lock().unwrap().iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{p}: no gradient for {name}"));
            let v = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{p}/{name}: non-finite gradient"
            );
            assert!(v.iter().any(|x| *x != 0.0), "{p}/{name}: zero gradient");
        }
    }
}

#[test]
fn weights_round_trip_through_safetensors() {
    let dir = std::env::temp_dir().join(format!("tf-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let a = model("pointnet2-normals", 3, 7);
    a.save(&path).unwrap();
    let mut b = model("pointnet2-normals", 3, 8);
    b.load(&path).unwrap();
    let (pos, batch) = shapes(3, 48, 9);
    let ya = a
        .forward(&Batch {
            pos: &pos,
            batch: Some(&batch),
            features: None,
        })
        .unwrap()
        .values;
    let yb = b
        .forward(&Batch {
            pos: &pos,
            batch: Some(&batch),
            features: None,
        })
        .unwrap()
        .values;
    assert_eq!(tf_testing::max_abs_diff(&ya, &yb).unwrap(), 0.0);
    let names = safetensors_names(&path);
    assert!(
        names.iter().any(|n| n == "frames.phi.0.weight"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("sa.1.")), "{names:?}");
    assert!(b.load(&dir.join("missing.safetensors")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint without the winding-confidence inputs loads into the model with them, and the
/// widened model computes exactly what the old one did (the new columns start at zero).
#[test]
fn weights_load_into_a_model_with_more_input_scalars() {
    let dir = std::env::temp_dir().join(format!("tf-models-widen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let a = model("pointnet2-normals-pca-winding-coarse", 3, 7);
    a.save(&path).unwrap();
    let mut b = model("pointnet2-normals-pca-winding-confidence", 3, 8);
    // Shapes differ, so a plain load refuses; widening loads.
    assert!(b.load(&path).is_err());
    b.load_widening_inputs(&path, a.config()).unwrap();
    let (pos, batch) = shapes(3, 48, 9);
    let out = |m: &Model| {
        let f = features(m, &pos, &batch);
        m.forward(&Batch {
            pos: &pos,
            batch: Some(&batch),
            features: f.as_ref(),
        })
        .unwrap()
        .values
    };
    let (ya, yb) = (out(&a), out(&b));
    let err = tf_testing::max_abs_diff(&ya, &yb).unwrap();
    assert!(err < 1e-12, "widened model differs by {err:e}");
    // The new inputs are there and nonzero: the equality is not for want of them.
    let f = features(&b, &pos, &batch).unwrap();
    let conf = f.narrow(1, 3, 2).unwrap().abs().unwrap().sum_all().unwrap();
    assert!(conf.to_scalar::<f64>().unwrap() > 0.0);
    // The same for the per-scale offsets (three more scalars after the variations).
    let mut o = model("pointnet2-normals-pca-winding-offset", 3, 8);
    o.load_widening_inputs(&path, a.config()).unwrap();
    let err = tf_testing::max_abs_diff(&ya, &out(&o)).unwrap();
    assert!(err < 1e-12, "widened model (offsets) differs by {err:e}");
    let f = features(&o, &pos, &batch).unwrap();
    let offsets = f.narrow(1, 3, 3).unwrap().abs().unwrap().sum_all().unwrap();
    assert!(offsets.to_scalar::<f64>().unwrap() > 0.0);
    // And for the visibility score (one more scalar after the variations).
    let mut v = model("pointnet2-normals-pca-winding-visibility-score", 3, 8);
    v.load_widening_inputs(&path, a.config()).unwrap();
    let err = tf_testing::max_abs_diff(&ya, &out(&v)).unwrap();
    assert!(
        err < 1e-12,
        "widened model (visibility score) differs by {err:e}"
    );
    let f = features(&v, &pos, &batch).unwrap();
    let score = f.narrow(1, 3, 1).unwrap().abs().unwrap().sum_all().unwrap();
    assert!(score.to_scalar::<f64>().unwrap() > 0.0);
    // Anything but added scalars is refused: other vectors, or another architecture.
    let other = model("pointnet2-normals-pca", 3, 7);
    assert!(b.load_widening_inputs(&path, other.config()).is_err());
    let mut c = model("pointnet2-normals-refined", 3, 8);
    assert!(c.load_widening_inputs(&path, a.config()).is_err());
    assert!(b
        .load_widening_inputs(&dir.join("missing.safetensors"), a.config())
        .is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn safetensors_names(path: &std::path::Path) -> Vec<String> {
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    t.keys().cloned().collect()
}

#[test]
fn configs_load_from_toml_and_environment_and_reject_bad_values() {
    let dir = std::env::temp_dir().join(format!("tf-models-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("model.toml");
    std::fs::write(&file, "refine = true\n[frames]\nkind = \"pca\"\n").unwrap();
    let cfg = ModelConfig::load("pointnet2-normals", 3, Some(&file)).unwrap();
    match &cfg {
        ModelConfig::Pointnet2(c) => {
            assert!(c.refine);
            assert_eq!(c.frames.kind, tf_models::FrameChoice::Pca);
        }
        other => panic!("wrong model {other:?}"),
    }
    std::fs::write(&file, "[frames]\nkind = \"magic\"\n").unwrap();
    let err = ModelConfig::load("pointnet2-normals", 3, Some(&file))
        .unwrap_err()
        .to_string();
    assert!(err.contains("magic") || err.contains("variant"), "{err}");
    std::fs::write(
        &file,
        "[[sa]]\nratio = 2.0\nradius = 0.1\nmax_neighbors = 4\nreps = \"4x0n\"\nhidden = 8\n",
    )
    .unwrap();
    assert!(ModelConfig::load("pointnet2-normals", 3, Some(&file)).is_err());
    // A misspelt key is an error, at every level (issue 31: `sacles = 3` trained one scale).
    for (toml, key) in [
        ("refin = true\n", "refin"),
        ("[frames]\nkindd = \"pca\"\n", "kindd"),
        (
            "[input]\nkind = \"pca-normal\"\nk = 8\nsacles = 3\n",
            "sacles",
        ),
        ("[head]\nkind = \"segmentation\"\nclases = 3\n", "clases"),
        // A unit variant's neighbours were ignored by serde.
        ("[head]\nkind = \"normals\"\nfoo = 1\n", "foo"),
        ("[head]\nkind = \"normals\"\nclasses = 3\n", "classes"),
        ("[head]\nkind = \"normal\"\n", "normal"),
    ] {
        std::fs::write(&file, toml).unwrap();
        let err = match ModelConfig::load("pointnet2-normals", 3, Some(&file)) {
            Ok(c) => panic!("{toml} loaded: {c:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(key), "{toml}: {err}");
    }
    assert!(ModelConfig::load("no-such-preset", 3, None)
        .unwrap_err()
        .to_string()
        .contains("known presets"));
    assert!(ModelConfig::load("pointnet2-normals", 3, Some(&dir.join("absent.toml"))).is_err());
    assert!(ModelConfig::preset("pointnet2-normals", 1)
        .unwrap()
        .validate()
        .is_err());
    // a bad rep string is a clear error at build time
    let mut c = ModelConfig::preset("pointnet2-normals", 3).unwrap();
    if let ModelConfig::Pointnet2(p) = &mut c {
        p.sa[0].reps = "4x1q".into();
    }
    let err = Model::new(c, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sa[0].reps"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_are_errors() {
    let m = model("pointnet2-normals", 3, 1);
    let nan = Tensor::full(f64::NAN, (10, 3), &Device::Cpu).unwrap();
    assert!(m
        .forward(&Batch {
            pos: &nan,
            batch: None,
            features: None
        })
        .is_err());
    let wrong_d = Tensor::zeros((10, 2), DType::F64, &Device::Cpu).unwrap();
    assert!(m
        .forward(&Batch {
            pos: &wrong_d,
            batch: None,
            features: None
        })
        .is_err());
    let pos = (PointCloud::uniform(3, 20, 1)
        .tensor(DType::F64, &Device::Cpu)
        .unwrap()
        * 0.5)
        .unwrap();
    let extra = Tensor::zeros((20, 3), DType::F64, &Device::Cpu).unwrap();
    assert!(m
        .forward(&Batch {
            pos: &pos,
            batch: None,
            features: Some(&extra)
        })
        .is_err());
    // A model refining a PCA estimate needs its features, of the right width.
    let pca = model("pointnet2-normals-pca", 3, 1);
    for f in [None, Some(&extra)] {
        let err = pca
            .forward(&Batch {
                pos: &pos,
                batch: None,
                features: f,
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("feature"), "{err}");
    }
    // Computed features and caller features at once, or too few neighbours: config errors.
    let mut c = ModelConfig::preset("pointnet2-normals-pca", 3).unwrap();
    if let ModelConfig::Pointnet2(p) = &mut c {
        p.in_reps = "1x1n".into();
    }
    assert!(c.validate().unwrap_err().to_string().contains("not both"));
    if let ModelConfig::Pointnet2(p) = &mut c {
        p.in_reps = String::new();
        p.input = tf_models::InputFeatures::pca(2);
    }
    assert!(c.validate().unwrap_err().to_string().contains("k >= d"));
    for scales in [0, 7] {
        if let ModelConfig::Pointnet2(p) = &mut c {
            p.input = tf_models::InputFeatures::PcaNormal {
                k: 8,
                scales,
                orient: Default::default(),
                confidence: false,
                offset: false,
                visibility: false,
            };
        }
        assert!(c.validate().unwrap_err().to_string().contains("scales"));
    }
}

/// The refining head starts exactly at its estimates: an untrained model returns the PCA
/// normal it was given, or the mean of the (sign-aligned) estimates at several scales.
#[test]
fn an_untrained_refining_head_returns_the_estimate() {
    for (preset, scales) in [
        ("pointnet2-normals-pca", 1),
        ("pointnet2-normals-pca-multiscale", 3),
    ] {
        let m = Model::new(model_config(preset, 3), DType::F64, &Device::Cpu).unwrap();
        let (pos, batch) = shapes(3, 64, 2);
        let f = features(&m, &pos, &batch).unwrap();
        let out = m
            .forward(&Batch {
                pos: &pos,
                batch: Some(&batch),
                features: Some(&f),
            })
            .unwrap()
            .values;
        let n = f.dim(0).unwrap();
        let mean = f
            .narrow(1, scales, 3 * scales)
            .unwrap()
            .reshape((n, scales, 3))
            .unwrap()
            .mean(1)
            .unwrap();
        let err = tf_testing::max_rel_diff(&out, &mean).unwrap();
        assert!(err < 1e-12, "{preset}: {err:e}");
    }
}
