//! Whole `predict` runs of the bundled normal estimator on dense tori, to check that the time
//! grows linearly with the number of points: writes one line per size with the wall time of
//! the input features and of the model, and the mean oriented cosine against the exact normals.
//!
//! `cargo run --release -p tf-benches --example predict_scaling -- 100000 1000000 5000000`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use rand::{Rng, SeedableRng};
use tensor_frames::predict::{agreement, bundled, predict, Output, PredictOptions};

/// `n` area-uniform points of a torus (radii 1 and 0.35) and their outward normals.
fn torus(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let (big, small) = (1.0, 0.35);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut pts, mut nrm) = (Vec::with_capacity(3 * n), Vec::with_capacity(3 * n));
    while pts.len() < 3 * n {
        let u = rng.random_range(0.0..std::f64::consts::TAU);
        let v = rng.random_range(0.0..std::f64::consts::TAU);
        // The area element is proportional to big + small cos v: reject to make it uniform.
        if rng.random_range(0.0..big + small) > big + small * v.cos() {
            continue;
        }
        let ring = big + small * v.cos();
        pts.extend([ring * u.cos(), ring * u.sin(), small * v.sin()]);
        nrm.extend([v.cos() * u.cos(), v.cos() * u.sin(), v.sin()]);
    }
    (pts, nrm)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    let (model, group) = bundled(candle_core::DType::F32)?;
    println!("points\tseconds\tfeatures_s\tmodel_s\tus_per_point\tmean_cos");
    for n in sizes {
        let (pts, exact) = torus(n, 1);
        let start = Instant::now();
        let (out, report) = predict(&model, &pts, group, &PredictOptions::default())?;
        let seconds = start.elapsed().as_secs_f64();
        let Output::Normals(normals) = out else {
            return Err("the bundled model predicts normals".into());
        };
        let (cos, _) = agreement(&normals, &exact, 3);
        println!(
            "{n}\t{seconds:.2}\t{:.2}\t{:.2}\t{:.2}\t{cos:.4}",
            report.features,
            report.model,
            1e6 * seconds / n as f64
        );
    }
    Ok(())
}
