# tensor-frames task runner. Install just with `cargo install just`; every recipe is a plain
# cargo command, shown here, so nothing needs just.

# List the recipes.
default:
    @just --list

# The test suite (the README's test command).
test:
    cargo test --workspace

# Formatting, lints with warnings as errors, and the tests: what CI runs.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# Property tests with thousands of cases per property (slow; run before a release).
proptest-long cases="4096":
    PROPTEST_CASES={{cases}} cargo test --workspace --release

# `cargo check --features cuda` without a GPU: installs the CUDA 13.0 compiler from NVIDIA's
# Python wheels (~/.cache/tensor-frames/cuda-13.0) and builds candle's kernels for
# CUDA_COMPUTE_CAP (default 90) into target/cuda. The first run compiles candle's CUDA kernels
# (tens of minutes on 2 cores); later runs take seconds.
check-cuda:
    bash scripts/check-cuda.sh

# Criterion benchmarks (figures land in target/criterion).
bench:
    cargo bench -p tf-benches

# The main job: every table of the paper in quick mode, a smoke run of the whole pipeline on
# the embedded synthetic data (one seed, a short budget; its tables say they are not
# evidence), written to papers/tensor-frames/results/quick/ with summary.md as the index.
# Finished training runs are cached in runs/ and reused.
reproduce:
    cargo run --release -p tf-reproduce -- --quick

# The standard protocol, whose tables are evidence (papers/tensor-frames/results/): the same
# learning-rate sweep for every row, early stopping, 3 seeds. Hours on 2 cores; every finished
# run leaves a summary in papers/tensor-frames/runs/ that a rerun reuses, so it can be finished
# over several sittings. Pass `--only t1-normals` for one table, `--data <folder>` for real data.
reproduce-standard *args:
    cargo run --release -p tf-reproduce -- --standard {{args}}

# One table in quick mode, e.g. `just table t1-normals` (names: equivariance-models, overhead,
# t1-normals, t4-ablation, t2-segmentation, t3-classification, f4-data-efficiency, normals-nd,
# nbody).
table name *args:
    cargo run --release -p tf-reproduce -- --only {{name}} {{args}}

# Retrain the bundled normal estimator (models/normals) on the offline real shapes plus the
# synthetic set: needs `just data-real` first. Five stages: 30 epochs with centroid-oriented
# PCA inputs (about an hour on 2 cores), then 8 epochs fine-tuned from them with
# winding-oriented inputs, then 8 more with the winding signing run coarse to fine (about 15
# minutes each), then 8 more with the rays overruling the winding sign where they are confident
# (about 35 minutes: the rays are cast on every training shape), then 8 more at half that
# learning rate (about 40 minutes). Resumable: rerun the same command after an interruption.
train-normals:
    cargo run --release -p tensor-frames -- train --config configs/normals-real.toml --out runs/normals-real
    cargo run --release -p tensor-frames -- train --config configs/normals-real-winding.toml --out runs/normals-real-winding
    cargo run --release -p tensor-frames -- train --config configs/normals-real-winding-coarse.toml --out runs/normals-real-winding-coarse
    cargo run --release -p tensor-frames -- train --config configs/normals-real-visibility-confident.toml --out runs/normals-real-visibility-confident
    cargo run --release -p tensor-frames -- train --config configs/normals-real-visibility-confident-2.toml --out runs/normals-real-visibility-confident-2
    bash scripts/ship-normals.sh runs/normals-real-visibility-confident-2 runs/normals-real runs/normals-real-winding runs/normals-real-winding-coarse runs/normals-real-visibility-confident

# Compare the bundled normal estimator with PCA normals on the held-out real shapes.
evaluate-normals:
    cargo run --release -p tensor-frames -- evaluate-normals

# Real meshes through Debian's package manager, converted to the ModelNet40-normal layout at
# data/real/cgal (idempotent; `bash scripts/data-real.sh [points]` without just).
data-real points="10000":
    bash scripts/data-real.sh {{points}}

# More of KiCad's 3D library for the standard-mode real-data tables: the first `per_class`
# models of each of its 90 categories (all of them, about 6,200, with a large cap), converted
# to data/real/kicad-<per_class>. The committed tables use 10 per class (685 shapes, what 2
# cores train in a few sittings): `just data-kicad`, then
# `just reproduce-standard --only t1-normals,t4-ablation,t3-classification --data data/real/kicad-10`
# (tables in papers/tensor-frames/results/kicad-10/).
data-kicad per_class="10" points="2048":
    KICAD_PER_CLASS={{per_class}} KICAD_POINTS={{points}} KICAD_OUT=data/real/kicad-{{per_class}} bash scripts/data-real.sh
