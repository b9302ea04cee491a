//! Batches: layout, fixed-size sampling, augmentation that preserves geometry, a deterministic
//! seeded loader, and errors that reach the caller.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tf_datasets::*;

fn cfg(augment: Augment) -> BatchConfig {
    BatchConfig {
        batch_size: 4,
        points: 64,
        augment,
        translate: 0.0,
        shuffle: true,
        seed: 9,
        noise: 0.0,
        noise_uniform: false,
        features: Default::default(),
    }
}

fn synthetic() -> Synthetic {
    Synthetic {
        shapes_per_class: 1,
        points: 100,
        noise: 0.0,
        warp: 0.0,
        seed: 1,
    }
}

#[test]
fn batches_have_the_model_layout() {
    let shapes: Vec<Shape> = (0..3).map(|i| synthetic().shape(Split::Train, i)).collect();
    let mut short = shapes[2].clone(); // fewer points than asked for: sampled with replacement
    short.points.truncate(30);
    short.normals.truncate(30);
    short.parts.as_mut().unwrap().truncate(10);
    let shapes = vec![shapes[0].clone(), shapes[1].clone(), short];
    let b = make_batch(
        &shapes,
        &cfg(Augment::None),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    assert_eq!(b.pos.dims(), &[192, 3]);
    assert_eq!(b.normals.dims(), &[192, 3]);
    assert_eq!(b.labels.to_vec1::<u32>().unwrap(), vec![0, 1, 2]);
    let ids = b.batch.to_vec1::<u32>().unwrap();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]) && ids[0] == 0 && ids[191] == 2);
    assert_eq!(b.parts.unwrap().dims(), &[192]);
    assert!(make_batch(&[], &cfg(Augment::None), &mut ChaCha8Rng::seed_from_u64(0)).is_err());
}

#[test]
fn augmentation_moves_shapes_rigidly_and_normals_with_them() {
    let shape = synthetic().shape(Split::Train, 0); // a sphere centred at the origin
    let mut c = cfg(Augment::RotateReflect);
    c.translate = 0.5;
    let plain = make_batch(
        std::slice::from_ref(&shape),
        &cfg(Augment::None),
        &mut ChaCha8Rng::seed_from_u64(4),
    )
    .unwrap();
    let moved = make_batch(
        std::slice::from_ref(&shape),
        &c,
        &mut ChaCha8Rng::seed_from_u64(4),
    )
    .unwrap();
    let (p0, p1) = (
        plain.pos.to_vec2::<f32>().unwrap(),
        moved.pos.to_vec2::<f32>().unwrap(),
    );
    let (n0, n1) = (
        plain.normals.to_vec2::<f32>().unwrap(),
        moved.normals.to_vec2::<f32>().unwrap(),
    );
    let dist = |a: &[f32], b: &[f32]| -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt()
    };
    for i in 0..64 {
        for j in 0..i {
            // same subset (drawn before the transform), so pairwise distances must agree
            assert!((dist(&p0[i], &p0[j]) - dist(&p1[i], &p1[j])).abs() < 1e-5);
            // angles between normals too
            let dot = |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
            assert!((dot(&n0[i], &n0[j]) - dot(&n1[i], &n1[j])).abs() < 1e-5);
        }
        let len: f32 = n1[i].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((len - 1.0).abs() < 1e-5);
    }
    assert!(dist(&p0[0], &p1[0]) > 1e-3, "the shape did not move");
}

#[test]
fn the_loader_is_deterministic_per_epoch_and_covers_every_shape() {
    let source: Arc<dyn ShapeSource> = Arc::new(SyntheticSplit(synthetic(), Split::Train));
    let collect = |epoch| -> Vec<LabelledBatch> {
        Loader::epoch(source.clone(), cfg(Augment::RotateReflect), epoch)
            .map(|b| b.unwrap())
            .collect()
    };
    let (a, b, c) = (collect(0), collect(0), collect(1));
    assert_eq!(a.len(), 3); // 10 shapes in batches of 4
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.pos.to_vec2::<f32>().unwrap(),
            y.pos.to_vec2::<f32>().unwrap()
        );
        assert_eq!(
            x.labels.to_vec1::<u32>().unwrap(),
            y.labels.to_vec1::<u32>().unwrap()
        );
    }
    let labels = |v: &[LabelledBatch]| -> Vec<u32> {
        v.iter()
            .flat_map(|b| b.labels.to_vec1::<u32>().unwrap())
            .collect()
    };
    let mut seen = labels(&a);
    assert_ne!(seen, labels(&c), "epochs should be shuffled differently");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<u32>>());
}

#[test]
fn loader_errors_reach_the_caller() {
    let dir = std::env::temp_dir().join(format!("tf-batching-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = synthetic();
    let shapes: Vec<Shape> = (0..10).map(|i| d.shape(Split::Train, i)).collect();
    write_modelnet_normal(
        &dir,
        "synthetic",
        &SYNTHETIC_CLASS_NAMES,
        &shapes,
        &shapes[..2],
    )
    .unwrap();
    let m = ModelNetNormal::open(&dir).unwrap();
    std::fs::write(&m.train[5].path, "0 0 0 0 0 0\n").unwrap(); // zero normal
    let mut c = cfg(Augment::None);
    c.shuffle = false;
    let results: Vec<_> = Loader::epoch(Arc::new(ModelNetSplit(m, Split::Train)), c, 0).collect();
    assert!(results[0].is_ok());
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("an error")
        .to_string();
    assert!(
        err.contains("normal is zero") && err.contains(":1:"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Computed features are measured on the whole shape (all its points, after the transformation
/// and the noise) and then subset with the points; noise moves points and keeps normals.
#[test]
fn features_come_from_the_whole_shape_and_noise_moves_points_only() {
    let mut shape = synthetic().shape(Split::Train, 0); // a sphere: PCA normals are radial
    shape.points.truncate(3 * 90);
    shape.normals.truncate(3 * 90);
    shape.parts = None;
    let spec = tf_normals::InputFeatures::pca(10);
    let whole = spec.compute(&shape.points, 3).unwrap();
    let mut c = cfg(Augment::None);
    c.points = 40;
    c.features = spec;
    let b = make_batch(
        std::slice::from_ref(&shape),
        &c,
        &mut ChaCha8Rng::seed_from_u64(5),
    )
    .unwrap();
    let f = b.features.unwrap().to_vec2::<f32>().unwrap();
    assert_eq!((f.len(), f[0].len()), (40, spec.dim(3)));
    let pos = b.pos.to_vec2::<f32>().unwrap();
    let nrm = b.normals.to_vec2::<f32>().unwrap();
    for (i, p) in pos.iter().enumerate() {
        // The row of the same point in the whole-shape features.
        let j = shape
            .points
            .chunks(3)
            .position(|q| q.iter().zip(p).all(|(a, b)| *a as f32 == *b))
            .unwrap();
        for (a, b) in f[i].iter().zip(&whole[j * 4..(j + 1) * 4]) {
            assert!(
                (a - *b as f32).abs() < 1e-6,
                "row {i}: {:?} vs whole-shape {j}",
                f[i]
            );
        }
        // The radial normal is known exactly; the PCA normal agrees with it.
        let cos: f32 = f[i][1..].iter().zip(&nrm[i]).map(|(a, b)| a * b).sum();
        assert!(cos > 0.8, "row {i}: PCA normal vs exact {cos}");
    }
    // Features of a 40-point subset alone would differ: the subset is sparser.
    let sparse = spec
        .compute(
            &pos.iter().flatten().map(|v| *v as f64).collect::<Vec<_>>(),
            3,
        )
        .unwrap();
    assert!(sparse
        .iter()
        .zip(f.iter().flatten())
        .any(|(a, b)| (*a as f32 - b).abs() > 1e-3));
    // Noise: positions move, normals do not.
    let mut noisy = cfg(Augment::None);
    noisy.noise = 0.05;
    let a = make_batch(
        std::slice::from_ref(&shape),
        &cfg(Augment::None),
        &mut ChaCha8Rng::seed_from_u64(6),
    )
    .unwrap();
    let n = make_batch(
        std::slice::from_ref(&shape),
        &noisy,
        &mut ChaCha8Rng::seed_from_u64(6),
    )
    .unwrap();
    let moved = (&a.pos - &n.pos)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 0.01, "noise moved points by at most {moved}");
    assert_eq!(
        a.normals.to_vec2::<f32>().unwrap(),
        n.normals.to_vec2::<f32>().unwrap()
    );
}

/// With `noise_uniform`, each shape draws its own noise level from `[0, noise]`: the shapes of
/// one batch are moved by clearly different amounts, and never by more than `noise` allows.
#[test]
fn uniform_noise_draws_a_level_per_shape() {
    // Shapes whose points all sit at the origin: a batch's positions are then the noise itself.
    let shapes: Vec<_> = (0..8)
        .map(|_| {
            let mut s = synthetic().shape(Split::Train, 0);
            s.points.iter_mut().for_each(|v| *v = 0.0);
            s
        })
        .collect();
    let mut c = cfg(Augment::None);
    c.batch_size = 8;
    c.noise = 0.02;
    for uniform in [false, true] {
        c.noise_uniform = uniform;
        let b = make_batch(&shapes, &c, &mut ChaCha8Rng::seed_from_u64(11)).unwrap();
        let pos = b.pos.to_vec2::<f32>().unwrap();
        let ids = b.batch.to_vec1::<u32>().unwrap();
        let mut sum = [0.0f64; 8];
        let mut count = [0usize; 8];
        for (p, &g) in pos.iter().zip(&ids) {
            sum[g as usize] += p.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
            count[g as usize] += 3;
        }
        // Per-shape RMS displacement = that shape's noise level (up to sampling error).
        let sigmas: Vec<f64> = sum
            .iter()
            .zip(&count)
            .map(|(s, n)| (s / *n as f64).sqrt())
            .collect();
        let (lo, hi) = sigmas
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(hi < 0.02 * 1.2, "levels {sigmas:?}");
        if uniform {
            assert!(
                hi - lo > 0.005,
                "levels should differ per shape: {sigmas:?}"
            );
        } else {
            assert!(lo > 0.02 * 0.8, "every shape at the full level: {sigmas:?}");
        }
    }
}
