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

# Criterion benchmarks (figures land in target/criterion).
bench:
    cargo bench -p tf-benches

# The main job. Today: the measured equivariance table of every built-in layer (d = 2..7),
# written to papers/tensor-frames/results/. The paper's tables join as their experiments land.
reproduce:
    cargo run --release -p tensor-frames -- equivariance-table --out papers/tensor-frames/results

# Real meshes through Debian's package manager, converted to the ModelNet40-normal layout at
# data/real/cgal (idempotent; `bash scripts/data-real.sh [points]` without just).
data-real points="10000":
    bash scripts/data-real.sh {{points}}
