//! Modes, data, cached training runs and evaluation helpers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::SeedableRng;
use tf_datasets::{Loader, ShapeSource};
use tf_models::{HeadConfig, Model, ModelConfig};
use tf_train::{
    evaluate, open_data, train, DataConfig, EpochRecord, EvalConfig, Run, RunConfig, Session,
    Splits, TrainConfig,
};

use crate::stat::{Cell, Stat};

/// The command line every experiment binary accepts.
#[derive(Parser, Debug, Clone)]
#[command(about = "Reproduce one table of the tensor-frames paper")]
pub struct Args {
    /// A smoke run of the whole pipeline on the embedded synthetic data, minutes on 2 CPU cores
    /// (the default): one seed, a short fixed budget. Its tables are not evidence.
    #[arg(long, conflicts_with_all = ["standard", "smoke"])]
    pub quick: bool,
    /// The standard protocol, whose tables are evidence: every row gets the same learning-rate
    /// sweep (chosen on validation with seed 0), trains until validation stops improving, and
    /// runs 3 seeds. Hours on 2 CPU cores; resumable from the committed run summaries.
    #[arg(long, alias = "full", conflicts_with = "smoke")]
    pub standard: bool,
    /// Tiny settings that only check the pipeline end to end (CI).
    #[arg(long)]
    pub smoke: bool,
    /// A dataset folder in the ModelNet40-normal layout instead of the synthetic set (also what
    /// `tensor-frames data convert` and `just data-real` write).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Number of seeds per row (default: 1 in quick and smoke mode, 3 in standard mode).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Where the tables go (default: `papers/tensor-frames/results` in standard mode,
    /// `papers/tensor-frames/results/quick` and `.../smoke` otherwise, so a quick run never
    /// overwrites the standard tables; with `--data <folder>`, a subfolder named after the
    /// data folder, so real-data tables never overwrite the synthetic ones).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where training runs (checkpoints, metrics) go; finished runs are reused.
    #[arg(long, default_value = "runs/experiments")]
    pub runs: PathBuf,
    /// Where standard mode keeps one small summary per finished run (seed, learning rate,
    /// epochs, metrics), named by a hash of the run's configuration. They are committed: a
    /// summary whose hash matches is reused instead of training, so the tables can be finished
    /// over several sittings and any row rerun to check it.
    #[arg(long, default_value = "papers/tensor-frames/runs")]
    pub summaries: PathBuf,
    /// Where the networks train: cpu, cuda[:N] or metal[:N] (GPUs need a build with
    /// `--features cuda` or `--features metal`).
    #[arg(long, default_value = "cpu")]
    pub device: tf_models::DeviceChoice,
}

impl Args {
    /// Arguments for a mode with defaults otherwise (used by the reproduce runner and tests).
    pub fn for_mode(mode: Mode, out: &Path, runs: &Path) -> Self {
        Self {
            quick: mode == Mode::Quick,
            standard: mode == Mode::Standard,
            smoke: mode == Mode::Smoke,
            data: None,
            seeds: None,
            out: Some(out.to_path_buf()),
            runs: runs.to_path_buf(),
            summaries: {
                let mut s = runs.as_os_str().to_owned();
                s.push("-summaries");
                PathBuf::from(s)
            },
            device: tf_models::DeviceChoice::Cpu,
        }
    }

    /// The mode the flags select.
    pub fn mode(&self) -> Mode {
        if self.smoke {
            Mode::Smoke
        } else if self.standard {
            Mode::Standard
        } else {
            Mode::Quick
        }
    }

    /// Where the tables go: `--out`, or the mode's own folder (under it, one folder per
    /// `--data` folder, named after it).
    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let root = PathBuf::from("papers/tensor-frames/results");
            let mode = match self.mode() {
                Mode::Standard => root,
                m => root.join(m.name()),
            };
            match self.data.as_deref().map(data_name) {
                Some(name) => mode.join(name),
                None => mode,
            }
        })
    }
}

/// The name of a data folder's tables folder: its last path component (`data/real/kicad-10`
/// -> `kicad-10`), or `data` for a path without one (such as `/`).
pub fn data_name(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .next_back()
        .unwrap_or_else(|| "data".into())
}

/// How much work a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pipeline check only (CI).
    Smoke,
    /// Minutes on 2 cores, synthetic data, one seed: a smoke run of the whole pipeline.
    Quick,
    /// The protocol whose tables are evidence.
    Standard,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Standard => "standard",
        }
    }

    /// Whether a table of this mode may state verdicts (standard mode only).
    pub fn is_evidence(self) -> bool {
        self == Mode::Standard
    }
}

/// The learning rates every row of a standard-mode table is tried with (seed 0, chosen on
/// validation, then fixed for the other seeds).
pub const LR_GRID: [f64; 3] = [3e-3, 1e-3, 3e-4];

/// Standard mode's cap on epochs and its early-stopping patience.
pub const STANDARD_EPOCHS: usize = 80;
/// See [`STANDARD_EPOCHS`].
pub const STANDARD_PATIENCE: usize = 20;

/// Bump when the evaluation of a run changes, so standard-mode summaries are recomputed.
const SUMMARY_VERSION: u32 = 1;

/// What a table trains for (decides the data and the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Per-point normals.
    Normals,
    /// Per-point part labels.
    Segmentation,
    /// Per-shape classes.
    Classification,
}

/// A trained row: the model, its curve and the data it was trained on.
#[derive(Debug)]
pub struct Fitted {
    /// The model after the last epoch.
    pub model: Model,
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
    /// Train / validation / test sets.
    pub splits: Splits,
    /// The exact run configuration.
    pub config: RunConfig,
    /// Wall time of training in this process (0 when the run was reused from disk).
    pub seconds: f64,
    /// The run's directory.
    pub dir: PathBuf,
}

/// Everything an experiment needs: mode, seeds, data and the run cache.
#[derive(Debug)]
pub struct Ctx {
    /// The mode.
    pub mode: Mode,
    /// Seeds per row.
    pub seeds: Vec<u64>,
    /// `--data`, if given.
    pub data: Option<PathBuf>,
    /// Output folder of tables.
    pub out: PathBuf,
    /// Folder of training runs.
    pub runs: PathBuf,
    /// Folder of standard-mode run summaries.
    pub summaries: PathBuf,
    /// The command that reproduces this output.
    pub command: String,
    /// Curves recorded by [`fit`](Self::fit): label -> (epoch, validation metric) per seed.
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
    /// Training time of every run this table used, summed (wall seconds on this machine's
    /// threads; reused runs count with the time they took when they were trained).
    pub train_seconds: f64,
    /// Standard-mode runs this table used, and how many of them ended at the epoch cap
    /// rather than by early stopping.
    pub runs_capped: (usize, usize),
    /// Where the networks train.
    pub device: tf_models::DeviceChoice,
    splits: HashMap<String, Splits>,
}

/// A label as a file-name part: lower-case ASCII letters and digits, other characters `-`.
fn slug(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl Ctx {
    /// From parsed arguments.
    pub fn new(args: &Args, name: &str) -> Result<Self> {
        let mode = args.mode();
        let n = args
            .seeds
            .unwrap_or(if mode == Mode::Standard { 3 } else { 1 });
        if n == 0 {
            bail!("--seeds must be at least 1");
        }
        if let Some(d) = &args.data {
            if !d.is_dir() {
                bail!("--data {} is not a folder", d.display());
            }
        }
        let mut command = format!("cargo run --release -p {name} -- --{}", mode.name());
        if let Some(d) = &args.data {
            command.push_str(&format!(" --data {}", d.display()));
        }
        if args.seeds.is_some() {
            command.push_str(&format!(" --seeds {n}"));
        }
        let out = args.out_dir();
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        Ok(Self {
            mode,
            seeds: (0..n as u64).collect(),
            data: args.data.clone(),
            out,
            runs: args.runs.clone(),
            summaries: args.summaries.clone(),
            command,
            curves: Vec::new(),
            train_seconds: 0.0,
            runs_capped: (0, 0),
            device: args.device,
            splits: HashMap::new(),
        })
    }

    /// Training settings of the mode.
    pub fn train_config(&self) -> TrainConfig {
        let mut t = TrainConfig {
            progress: false,
            device: self.device,
            ..Default::default()
        };
        match self.mode {
            Mode::Smoke => {
                t.epochs = 1;
                t.batch_size = 4;
                t.points = 64;
                t.warmup_steps = 1;
            }
            Mode::Quick => {
                t.epochs = 12;
                t.batch_size = 8;
                t.points = 256;
                t.warmup_steps = 20;
            }
            Mode::Standard => {
                t.epochs = STANDARD_EPOCHS;
                t.patience = STANDARD_PATIENCE;
                t.batch_size = 8;
                t.points = 256;
                t.warmup_steps = 40;
            }
        }
        t
    }

    /// Data of the mode for a task in dimension `d`: `--data` if given (3D only), else the
    /// synthetic set (3D) or the hypersurfaces (other d).
    pub fn data_config(&self, d: usize) -> Result<DataConfig> {
        if let Some(path) = &self.data {
            if d != 3 {
                bail!("--data holds 3D shapes; this table needs d = {d}");
            }
            return Ok(DataConfig::Modelnet { path: path.clone() });
        }
        let (train_per_class, test_per_class, points) = match self.mode {
            Mode::Smoke => (1, 1, 96),
            Mode::Quick => (20, 10, 512),
            Mode::Standard => (30, 10, 512),
        };
        Ok(if d == 3 {
            DataConfig::Synthetic {
                train_per_class,
                test_per_class,
                points,
                seed: 0,
                warp: 0.0,
            }
        } else {
            // Three classes instead of ten: more shapes per class for the same budget.
            DataConfig::SyntheticNd {
                d,
                train_per_class: train_per_class * 10 / 3,
                test_per_class: test_per_class * 10 / 3,
                points,
                seed: 0,
            }
        })
    }

    /// A short description of the data, for the tables.
    pub fn describe_data(&self, d: usize) -> String {
        match self.data_config(d) {
            Ok(DataConfig::Synthetic {
                train_per_class,
                test_per_class,
                points,
                ..
            }) => format!(
                "embedded synthetic set (10 classes, {train_per_class} train / {test_per_class} test shapes per class, {points} points generated per shape)"
            ),
            Ok(DataConfig::SyntheticNd {
                d,
                train_per_class,
                test_per_class,
                points,
                ..
            }) => format!(
                "synthetic hypersurfaces in d = {d} (3 classes, {train_per_class} train / {test_per_class} test per class, {points} points)"
            ),
            Ok(DataConfig::Modelnet { path }) => match tf_datasets::ModelNetNormal::open(&path) {
                Ok(m) => {
                    let val = (0..m.train.len())
                        .filter(|&i| tf_train::is_validation(i))
                        .count();
                    format!(
                        "{} (ModelNet-normal layout; {} classes, {} training shapes of which every \
                         tenth, {val}, is held out for validation, {} test shapes; the test split \
                         is the one the folder was written with)",
                        path.display(),
                        m.classes.len(),
                        m.train.len(),
                        m.test.len()
                    )
                }
                Err(e) => format!("{}: {e}", path.display()),
            },
            Ok(other) => format!("{other:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The loaded sets of a data configuration (loaded once per process).
    pub fn splits(&mut self, data: &DataConfig) -> Result<Splits> {
        let key = serde_json::to_string(data)?;
        if let Some(s) = self.splits.get(&key) {
            return Ok(s.clone());
        }
        let s = open_data(data).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.splits.insert(key, s.clone());
        Ok(s)
    }

    /// Number of classes a task needs on this data (labels or parts).
    pub fn classes(&mut self, data: &DataConfig, task: Task) -> Result<usize> {
        let s = self.splits(data)?;
        let all = s.train.0.iter().chain(&s.test.0);
        let max = match task {
            Task::Normals => 0,
            Task::Classification => all.map(|x| x.label).max().unwrap_or(0),
            Task::Segmentation => all
                .flat_map(|x| x.parts.iter().flatten().copied())
                .max()
                .unwrap_or(0),
        };
        Ok(max as usize + 1)
    }

    /// A preset with its head sized for the data.
    pub fn model(
        &mut self,
        preset: &str,
        d: usize,
        data: &DataConfig,
        task: Task,
    ) -> Result<ModelConfig> {
        let mut m = ModelConfig::preset(preset, d).map_err(|e| anyhow::anyhow!("{e}"))?;
        let head = match task {
            Task::Normals => HeadConfig::Normals,
            Task::Segmentation => HeadConfig::Segmentation {
                classes: self.classes(data, task)?,
            },
            Task::Classification => HeadConfig::Classification {
                classes: self.classes(data, task)?,
            },
        };
        match &mut m {
            ModelConfig::Pointnet2(c) => c.head = head,
            ModelConfig::Dgcnn(c) => c.head = head,
            ModelConfig::Attention(c) => c.head = head,
        }
        if task == Task::Classification {
            if let ModelConfig::Pointnet2(c) = &mut m {
                c.fp.clear();
            }
        }
        Ok(m)
    }

    /// Trains (or reuses) one row: the run directory is named by `label` and a hash of the full
    /// configuration, so tables that share a row share its training, and an interrupted
    /// reproduce resumes where it stopped.
    pub fn fit(&mut self, label: &str, config: RunConfig, limit: Option<usize>) -> Result<Fitted> {
        let data = config.data.clone();
        config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut splits = self.splits(&data)?;
        // A subset of n shapes is repeated to the whole set's length: every size trains with
        // the same epochs, steps, validation schedule and patience.
        let full = splits.train.0.len();
        if let Some(n) = limit {
            splits.train = std::sync::Arc::new(splits.train.truncated_repeated(n, full));
        }
        let key = format!(
            "g{}{}{}",
            tf_datasets::GENERATOR_VERSION,
            serde_json::to_string(&config)?,
            limit
                .map(|n| format!("limit{n}repeated{full}"))
                .unwrap_or_default()
        );
        let dir = self
            .runs
            .join(format!("{}-{:016x}", slug(label), fnv(&key)));
        let run = Run {
            dir: dir.clone(),
            config: config.clone(),
            train: splits.train.clone(),
            val: Some(splits.val.clone()),
        };
        let outcome = train(&run, Session::default())
            .map_err(|e| anyhow::anyhow!("{label}: {e}"))
            .with_context(|| format!("run directory {}", dir.display()))?;
        let primary = tf_train::primary_name(outcome.model.head());
        self.curves.push((
            format!("{label} (seed {})", config.train.seed),
            outcome
                .history
                .iter()
                .filter_map(|r| r.val.get(primary).map(|v| (r.epoch as f64, *v)))
                .collect(),
        ));
        let seconds = if outcome.resumed_from == config.train.epochs {
            0.0
        } else {
            outcome.seconds
        };
        Ok(Fitted {
            model: outcome.model,
            history: outcome.history,
            splits,
            config,
            seconds,
            dir,
        })
    }

    /// Classical PCA normals (k neighbours, oriented away from the centroid) on exactly the
    /// test points the models see: returns mean cos and mean |cos|.
    pub fn pca_test(&mut self, data: &DataConfig, k: usize, rotated: bool) -> Result<(f64, f64)> {
        let splits = self.splits(data)?;
        let cfg = self.train_config();
        let eval = EvalConfig {
            batch_size: cfg.batch_size,
            points: cfg.points,
            seed: 0x7465_7374,
            transform: rotated,
        };
        pca_metrics(splits.test.clone(), &eval, k)
    }
}

/// PCA normal metrics over a test set (same subsets and transformations as [`evaluate`]).
pub fn pca_metrics(
    source: std::sync::Arc<dyn ShapeSource>,
    eval: &EvalConfig,
    k: usize,
) -> Result<(f64, f64)> {
    let cfg = tf_datasets::BatchConfig {
        batch_size: eval.batch_size,
        points: eval.points,
        augment: tf_datasets::Augment::None,
        translate: 0.0,
        shuffle: false,
        seed: eval.seed,
        noise: 0.0,
        noise_uniform: false,
        features: Default::default(),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(eval.seed ^ 0x0072_6f74);
    let (mut cos, mut abs, mut n) = (0.0, 0.0, 0usize);
    for batch in Loader::epoch(source, cfg, 0) {
        let mut batch = batch?;
        if eval.transform {
            batch = tf_train::transform_batch(&batch, Default::default(), &mut rng)?;
        }
        let (_, d) = batch.pos.dims2()?;
        let pos = batch
            .pos
            .to_dtype(candle_core::DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let nrm = batch
            .normals
            .to_dtype(candle_core::DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let owner = batch.batch.to_vec1::<u32>()?;
        let mut start = 0;
        while start < owner.len() {
            let mut end = start;
            while end < owner.len() && owner[end] == owner[start] {
                end += 1;
            }
            let est = tf_normals::pca_normals(&pos[start * d..end * d], d, k)?;
            for (e, t) in est.chunks(d).zip(nrm[start * d..end * d].chunks(d)) {
                let c: f64 = e.iter().zip(t).map(|(a, b)| a * b).sum::<f64>()
                    / t.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                cos += c;
                abs += c.abs();
                n += 1;
            }
            start = end;
        }
    }
    let n = n.max(1) as f64;
    Ok((cos / n, abs / n))
}

/// What one finished training run measured: the small record standard mode commits (see
/// [`Args::summaries`]) and reuses when the run's configuration hash matches.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RunSummary {
    /// Row label.
    pub label: String,
    /// FNV-1a hash of the run's full configuration (model, training, data, training-set
    /// limit) and of the summary format, hex.
    pub config_hash: String,
    /// Training seed.
    pub seed: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch with the best validation value (the tested weights in standard mode).
    pub best_epoch: usize,
    /// Whether early stopping ended the run before its epoch cap.
    pub stopped_early: bool,
    /// Validation metrics at the best epoch.
    pub val: BTreeMap<String, f64>,
    /// Test metrics on canonical poses.
    pub canonical: BTreeMap<String, f64>,
    /// Test metrics under random O(d) elements.
    pub rotated: BTreeMap<String, f64>,
    /// Trainable parameters.
    pub params: usize,
    /// Parameters of the frame network.
    pub frame_params: usize,
    /// Seconds of training (summed over sessions that trained it).
    pub train_seconds: f64,
    /// Validation value of the primary metric per epoch.
    pub curve: Vec<(usize, f64)>,
}

/// A row evaluated over all seeds.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// Test metrics on canonical poses, per seed.
    pub canonical: Vec<BTreeMap<String, f64>>,
    /// Test metrics under random O(d) elements, per seed.
    pub rotated: Vec<BTreeMap<String, f64>>,
    /// Parameters of the model.
    pub params: usize,
    /// Training seconds spent in this process.
    pub seconds: f64,
    /// The learning rate used per seed (chosen on validation for the baselines).
    pub lrs: Vec<f64>,
    /// The runs behind the row, one per seed (and, for seed 0, every learning rate tried).
    pub runs: Vec<RunSummary>,
    /// The metric that says whether the row trained (`abs_cos` for normals, `miou` for parts,
    /// `accuracy` for classes) and its chance level (a random direction, the best constant
    /// part, a uniform guess).
    pub chance: (&'static str, f64),
}

/// Learning rates tried for the non-equivariant baselines.
pub const BASELINE_LRS: [f64; 3] = [3e-3, 1e-3, 3e-4];

impl Evaluated {
    /// A canonical-pose metric over seeds.
    pub fn canonical(&self, metric: &str) -> Stat {
        Stat::of(&self.canonical.iter().map(|m| m[metric]).collect::<Vec<_>>())
    }

    /// A rotated-pose metric over seeds.
    pub fn rotated(&self, metric: &str) -> Stat {
        Stat::of(&self.rotated.iter().map(|m| m[metric]).collect::<Vec<_>>())
    }

    /// The learning rate(s) used, for a table cell.
    pub fn lr_cell(&self) -> Cell {
        let mut l: Vec<String> = self.lrs.iter().map(|v| format!("{v:.0e}")).collect();
        l.dedup();
        Cell::Text(l.join(", "))
    }

    /// Per-seed test metric under random O(d) elements (for paired comparisons).
    pub fn rotated_values(&self, metric: &str) -> Vec<f64> {
        self.rotated.iter().map(|m| m[metric]).collect()
    }

    /// The seeds whose best validation value did not beat chance by 0.05 on the row's
    /// [`chance`](Self::chance) metric (at the learning rate chosen for them). Runs reused from
    /// quick mode have no validation record and count as trained.
    pub fn untrained_seeds(&self) -> Vec<u64> {
        let (metric, chance) = self.chance;
        let seeds: std::collections::BTreeSet<u64> = self.runs.iter().map(|r| r.seed).collect();
        seeds
            .into_iter()
            .filter(|&s| {
                !self
                    .runs
                    .iter()
                    .filter(|r| r.seed == s && self.lrs.contains(&r.lr))
                    .any(|r| {
                        r.val
                            .get(metric)
                            .is_none_or(|&v| crate::verdict::trained(v, chance, 0.05))
                    })
            })
            .collect()
    }

    /// Whether the row trained: at least one seed beat chance on validation. A seed that did
    /// not stays in the row's mean and in its paired comparisons (it is an outcome of the
    /// protocol, like any other), and the label names it.
    pub fn trained(&self) -> bool {
        let seeds: std::collections::BTreeSet<u64> = self.runs.iter().map(|r| r.seed).collect();
        self.untrained_seeds().len() < seeds.len()
    }

    /// A row label, marked when the row did not train (its numbers then enter no verdict) or
    /// when some of its seeds did not.
    pub fn label(&self, label: &str) -> String {
        let failed = self.untrained_seeds();
        if !self.trained() {
            format!("{label} (did not train)")
        } else if failed.is_empty() {
            label.to_string()
        } else {
            let list: Vec<String> = failed.iter().map(u64::to_string).collect();
            format!(
                "{label} ({} {} did not train)",
                if failed.len() == 1 { "seed" } else { "seeds" },
                list.join(", ")
            )
        }
    }

    /// Epochs trained per seed, as `min-max` text for a table cell.
    pub fn epochs_cell(&self) -> Cell {
        let chosen: Vec<usize> = self
            .runs
            .iter()
            .filter(|r| self.lrs.get(r.seed as usize) == Some(&r.lr))
            .map(|r| r.epochs)
            .collect();
        match (chosen.iter().min(), chosen.iter().max()) {
            (Some(a), Some(b)) if a == b => Cell::Text(a.to_string()),
            (Some(a), Some(b)) => Cell::Text(format!("{a}-{b}")),
            _ => Cell::Text("-".into()),
        }
    }

    /// Largest |rotated - canonical| of a metric over seeds.
    pub fn gap(&self, metric: &str) -> f64 {
        self.canonical
            .iter()
            .zip(&self.rotated)
            .map(|(c, r)| (c[metric] - r[metric]).abs())
            .fold(0.0, f64::max)
    }
}

impl Ctx {
    /// Trains a row once per seed (training seed = run seed) and tests each on canonical and
    /// randomly transformed test shapes.
    ///
    /// Standard mode tries every learning rate of [`LR_GRID`] with the first seed, keeps the
    /// one with the best validation value for every seed, trains until validation stops
    /// improving and tests the best epoch's weights. Quick and smoke mode train a fixed number
    /// of epochs and test the last; only the non-equivariant baselines, which do not train at
    /// the default rate, get a sweep (per seed) there.
    pub fn evaluate_row(
        &mut self,
        label: &str,
        model: &ModelConfig,
        data: &DataConfig,
        limit: Option<usize>,
    ) -> Result<Evaluated> {
        self.evaluate_row_with(label, model, data, limit, None)
    }

    /// [`evaluate_row`](Self::evaluate_row), optionally with one learning rate instead of the
    /// mode's sweep.
    pub fn evaluate_row_with(
        &mut self,
        label: &str,
        model: &ModelConfig,
        data: &DataConfig,
        limit: Option<usize>,
        lr: Option<f64>,
    ) -> Result<Evaluated> {
        let chance = match model.head() {
            HeadConfig::Normals => ("abs_cos", crate::verdict::chance_abs_cos(model.d())),
            HeadConfig::Segmentation { classes } => ("miou", self.constant_miou(data, classes)?),
            HeadConfig::Classification { classes } => ("accuracy", 1.0 / classes.max(1) as f64),
        };
        let mut out = Evaluated {
            canonical: Vec::new(),
            rotated: Vec::new(),
            params: 0,
            seconds: 0.0,
            lrs: Vec::new(),
            runs: Vec::new(),
            chance,
        };
        use tf_models::FrameChoice;
        let baseline = matches!(
            model.frames().kind,
            FrameChoice::Identity | FrameChoice::RandomGlobal
        );
        let default_lr = self.train_config().lr;
        let standard = self.mode == Mode::Standard;
        let lrs: Vec<f64> = if let Some(lr) = lr {
            vec![lr]
        } else if standard || (baseline && self.mode != Mode::Smoke) {
            if standard {
                LR_GRID.to_vec()
            } else {
                BASELINE_LRS.to_vec()
            }
        } else {
            vec![default_lr]
        };
        let mut chosen: Option<f64> = None;
        for (i, seed) in self.seeds.clone().into_iter().enumerate() {
            // Standard mode sweeps with the first seed only and keeps its choice.
            let tried: Vec<f64> = match chosen {
                Some(lr) if standard && i > 0 => vec![lr],
                _ => lrs.clone(),
            };
            let mut best: Option<(f64, RunSummary)> = None;
            for &lr in &tried {
                let mut t = self.train_config();
                t.seed = seed;
                t.lr = lr;
                let config = RunConfig {
                    model: model.clone(),
                    train: t,
                    data: data.clone(),
                };
                let run = self.run_summary(label, config, limit)?;
                let primary = tf_train::primary_name(model.head());
                let score = run.val.get(primary).copied().unwrap_or(f64::NEG_INFINITY);
                out.seconds += run.train_seconds;
                out.runs.push(run.clone());
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, run));
                }
            }
            let Some((_, run)) = best else {
                bail!("no learning rate to try");
            };
            chosen = Some(run.lr);
            out.lrs.push(run.lr);
            out.canonical.push(run.canonical.clone());
            out.rotated.push(run.rotated.clone());
            out.params = run.params;
            tracing::info!(row = label, seed, lr = run.lr, epochs = run.epochs, canonical = ?run.canonical, rotated = ?run.rotated, "row");
        }
        Ok(out)
    }

    /// One run's summary: in standard mode read from [`Ctx::summaries`] when a summary with the
    /// run's configuration hash is there, else trained (resuming from `runs/` if a session was
    /// interrupted), tested at its best epoch, and written there atomically.
    pub fn run_summary(
        &mut self,
        label: &str,
        config: RunConfig,
        limit: Option<usize>,
    ) -> Result<RunSummary> {
        let key = format!(
            "v{SUMMARY_VERSION}g{}{}{}",
            tf_datasets::GENERATOR_VERSION,
            serde_json::to_string(&config)?,
            limit
                .map(|n| format!("limit{n}repeated"))
                .unwrap_or_default()
        );
        let hash = format!("{:016x}", fnv(&key));
        let path = self.summaries.join(format!(
            "{}-seed{}-{hash}.json",
            slug(label),
            config.train.seed
        ));
        let standard = self.mode == Mode::Standard;
        if standard {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let s: RunSummary = serde_json::from_str(&text)
                    .with_context(|| format!("reading run summary {}", path.display()))?;
                if s.config_hash == hash {
                    tracing::info!(row = label, seed = s.seed, lr = s.lr, "reusing run summary");
                    self.train_seconds += s.train_seconds;
                    self.runs_capped.0 += 1;
                    self.runs_capped.1 += usize::from(!s.stopped_early);
                    self.curves.push((
                        format!("{label} (seed {}, lr {:.0e})", s.seed, s.lr),
                        s.curve.iter().map(|&(e, v)| (e as f64, v)).collect(),
                    ));
                    return Ok(s);
                }
            }
        }
        let Fitted {
            model: last,
            history,
            splits,
            config,
            dir,
            ..
        } = self.fit(label, config, limit)?;
        // Standard mode tests the weights of the best validation epoch.
        let tested = if standard {
            tf_train::load_model(&dir, candle_core::DType::F32)
                .map_err(|e| anyhow::anyhow!("{label}: best checkpoint: {e}"))?
        } else {
            last
        };
        let primary = tf_train::primary_name(tested.head());
        let best = history
            .iter()
            .filter(|r| r.val.contains_key(primary))
            .max_by(|a, b| a.val[primary].total_cmp(&b.val[primary]))
            .filter(|_| standard)
            .or(history.last());
        let summary = RunSummary {
            label: label.to_string(),
            config_hash: hash,
            seed: config.train.seed,
            lr: config.train.lr,
            epochs: history.len(),
            best_epoch: best.map_or(0, |r| r.epoch),
            stopped_early: history.len() < config.train.epochs,
            val: best.map(|r| r.val.clone()).unwrap_or_default(),
            canonical: test_model(&tested, &splits, &config, false)?,
            rotated: test_model(&tested, &splits, &config, true)?,
            params: tested.params(),
            frame_params: tested.frame_params(),
            train_seconds: history.iter().map(|r| r.seconds).sum(),
            curve: history
                .iter()
                .filter_map(|r| r.val.get(primary).map(|v| (r.epoch, *v)))
                .collect(),
        };
        self.train_seconds += summary.train_seconds;
        if standard {
            self.runs_capped.0 += 1;
            self.runs_capped.1 += usize::from(!summary.stopped_early);
        }
        if standard {
            std::fs::create_dir_all(&self.summaries)
                .with_context(|| format!("creating {}", self.summaries.display()))?;
            tf_train::write_atomic(&path, &serde_json::to_string_pretty(&summary)?)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(summary)
    }
}

impl Ctx {
    /// The validation mIoU of the best constant prediction (one part for every point): what a
    /// segmentation model that learned nothing scores, since parts are far from balanced.
    pub fn constant_miou(&mut self, data: &DataConfig, classes: usize) -> Result<f64> {
        let splits = self.splits(data)?;
        let shapes: Vec<&Vec<u32>> = splits
            .val
            .0
            .iter()
            .filter_map(|s| s.parts.as_ref())
            .collect();
        Ok((0..classes as u32)
            .map(|c| {
                shapes
                    .iter()
                    .map(|p| tf_train::task::shape_iou(&vec![c; p.len()], p, classes))
                    .sum::<f64>()
                    / shapes.len().max(1) as f64
            })
            .fold(0.0, f64::max))
    }

    /// The protocol of this mode, for the tables' headers.
    pub fn protocol(&self) -> String {
        let t = self.train_config();
        match self.mode {
            Mode::Standard => format!(
                "every row tries learning rates {} with seed 0 and keeps the one with the best \
                 validation value for all seeds; each run trains until validation has not \
                 improved for {} epochs (at most {}), and the best validation epoch is tested; \
                 {} shapes x {} points per step",
                LR_GRID.map(|l| format!("{l:.0e}")).join(", "),
                t.patience,
                t.epochs,
                t.batch_size,
                t.points
            ),
            _ => format!(
                "a fixed budget of {} epochs of {} shapes x {} points, the last epoch tested; \
                 only the non-equivariant baselines get a learning-rate sweep ({})",
                t.epochs,
                t.batch_size,
                t.points,
                BASELINE_LRS.map(|l| format!("{l:.0e}")).join(", ")
            ),
        }
    }

    /// The paired comparison of rows `a` and `b` on a rotated-pose test metric, for the claim
    /// "`a` + `margin` > `b`" (`margin` 0: `a` beats `b`; 0.02: `a` is within 0.02 of `b` or
    /// better). No verdict from rows that did not train, nor outside standard mode.
    pub fn compare(
        &self,
        a: &Evaluated,
        b: &Evaluated,
        metric: &str,
        margin: f64,
    ) -> crate::Paired {
        crate::Paired::with_margin(
            &a.rotated_values(metric),
            &b.rotated_values(metric),
            margin,
            a.trained() && b.trained(),
            self.mode.is_evidence(),
        )
    }
}

fn test_model(
    model: &Model,
    splits: &Splits,
    config: &RunConfig,
    rotated: bool,
) -> Result<BTreeMap<String, f64>> {
    evaluate(
        model,
        splits.test.clone(),
        &EvalConfig::from_run(config, rotated),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up row of three seeds whose best validation |cos| values are `val` (chance 0.5).
    fn row(val: [f64; 3]) -> Evaluated {
        let runs: Vec<RunSummary> = val
            .iter()
            .enumerate()
            .map(|(seed, v)| RunSummary {
                label: "row".into(),
                config_hash: format!("{seed}"),
                seed: seed as u64,
                lr: 1e-3,
                epochs: 80,
                best_epoch: 80,
                stopped_early: false,
                val: BTreeMap::from([("abs_cos".to_string(), *v)]),
                canonical: BTreeMap::new(),
                rotated: BTreeMap::new(),
                params: 1,
                frame_params: 0,
                train_seconds: 1.0,
                curve: Vec::new(),
            })
            .collect();
        Evaluated {
            canonical: Vec::new(),
            rotated: Vec::new(),
            params: 1,
            seconds: 3.0,
            lrs: vec![1e-3; 3],
            runs,
            chance: ("abs_cos", 0.5),
        }
    }

    #[test]
    fn a_row_with_some_seeds_at_chance_trained_and_names_them() {
        let all = row([0.8, 0.81, 0.79]);
        assert!(all.trained() && all.untrained_seeds().is_empty());
        assert_eq!(all.label("aug"), "aug");
        let one = row([0.8, 0.81, 0.52]);
        assert!(one.trained());
        assert_eq!(one.untrained_seeds(), vec![2]);
        assert_eq!(one.label("aug"), "aug (seed 2 did not train)");
        let two = row([0.51, 0.81, 0.52]);
        assert_eq!(two.label("aug"), "aug (seeds 0, 2 did not train)");
        let none = row([0.51, 0.5, 0.52]);
        assert!(!none.trained());
        assert_eq!(none.label("aug"), "aug (did not train)");
    }

    fn args(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("reproduce").chain(flags.iter().copied())).unwrap()
    }

    #[test]
    fn real_data_tables_get_their_own_folder() {
        let root = Path::new("papers/tensor-frames/results");
        assert_eq!(args(&["--standard"]).out_dir(), root);
        assert_eq!(args(&["--quick"]).out_dir(), root.join("quick"));
        assert_eq!(
            args(&["--standard", "--data", "data/real/kicad-10/"]).out_dir(),
            root.join("kicad-10")
        );
        assert_eq!(
            args(&["--data", "data/real/kicad-10"]).out_dir(),
            root.join("quick").join("kicad-10")
        );
        // An explicit --out wins.
        assert_eq!(
            args(&["--standard", "--data", "x", "--out", "elsewhere"]).out_dir(),
            Path::new("elsewhere")
        );
        assert_eq!(data_name(Path::new("/")), "data");
    }
}
