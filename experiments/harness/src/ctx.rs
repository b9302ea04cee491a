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
    /// Embedded synthetic data, minutes on 2 CPU cores (the default).
    #[arg(long, conflicts_with_all = ["full", "smoke"])]
    pub quick: bool,
    /// The full protocol: bigger data and models trained longer (hours on CPU).
    #[arg(long, conflicts_with = "smoke")]
    pub full: bool,
    /// Tiny settings that only check the pipeline end to end (CI).
    #[arg(long)]
    pub smoke: bool,
    /// A dataset folder in the ModelNet40-normal layout instead of the synthetic set (also what
    /// `tensor-frames data convert` and `just data-real` write).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Number of seeds per row (default: 1 in quick and smoke mode, 3 in full mode).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Where the tables go.
    #[arg(long, default_value = "papers/tensor-frames/results")]
    pub out: PathBuf,
    /// Where training runs (checkpoints, metrics) go; finished runs are reused.
    #[arg(long, default_value = "runs/experiments")]
    pub runs: PathBuf,
}

impl Args {
    /// Arguments for a mode with defaults otherwise (used by the reproduce runner and tests).
    pub fn for_mode(mode: Mode, out: &Path, runs: &Path) -> Self {
        Self {
            quick: mode == Mode::Quick,
            full: mode == Mode::Full,
            smoke: mode == Mode::Smoke,
            data: None,
            seeds: None,
            out: out.to_path_buf(),
            runs: runs.to_path_buf(),
        }
    }
}

/// How much work a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pipeline check only.
    Smoke,
    /// Minutes on 2 cores, synthetic data.
    Quick,
    /// The real protocol.
    Full,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

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
    /// The command that reproduces this output.
    pub command: String,
    /// Curves recorded by [`fit`](Self::fit): label -> (epoch, validation metric) per seed.
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
    splits: HashMap<String, Splits>,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl Ctx {
    /// From parsed arguments.
    pub fn new(args: &Args, name: &str) -> Result<Self> {
        let mode = if args.smoke {
            Mode::Smoke
        } else if args.full {
            Mode::Full
        } else {
            Mode::Quick
        };
        let n = args.seeds.unwrap_or(if mode == Mode::Full { 3 } else { 1 });
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
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        Ok(Self {
            mode,
            seeds: (0..n as u64).collect(),
            data: args.data.clone(),
            out: args.out.clone(),
            runs: args.runs.clone(),
            command,
            curves: Vec::new(),
            splits: HashMap::new(),
        })
    }

    /// Training settings of the mode.
    pub fn train_config(&self) -> TrainConfig {
        let mut t = TrainConfig {
            progress: false,
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
            Mode::Full => {
                t.epochs = 60;
                t.batch_size = 16;
                t.points = 1024;
                t.warmup_steps = 200;
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
            Mode::Full => (100, 30, 2048),
        };
        Ok(if d == 3 {
            DataConfig::Synthetic {
                train_per_class,
                test_per_class,
                points,
                seed: 0,
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
            Ok(DataConfig::Modelnet { path }) => format!("{} (ModelNet-normal layout)", path.display()),
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
    pub fn fit(
        &mut self,
        label: &str,
        model: ModelConfig,
        data: DataConfig,
        train_cfg: TrainConfig,
        limit: Option<usize>,
    ) -> Result<Fitted> {
        let config = RunConfig {
            model,
            train: train_cfg,
            data: data.clone(),
        };
        config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut splits = self.splits(&data)?;
        if let Some(n) = limit {
            splits.train = std::sync::Arc::new(splits.train.truncated(n));
        }
        let key = format!(
            "{}{}",
            serde_json::to_string(&config)?,
            limit.map(|n| format!("limit{n}")).unwrap_or_default()
        );
        let slug: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let dir = self.runs.join(format!("{slug}-{:016x}", fnv(&key)));
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
        })
    }

    /// Test metrics of a fitted row, canonical or under random O(d) elements.
    pub fn test(&self, fitted: &Fitted, rotated: bool) -> Result<BTreeMap<String, f64>> {
        evaluate(
            &fitted.model,
            fitted.splits.test.clone(),
            &EvalConfig::from_run(&fitted.config, rotated),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
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
    pub fn evaluate_row(
        &mut self,
        label: &str,
        model: &ModelConfig,
        data: &DataConfig,
        limit: Option<usize>,
    ) -> Result<Evaluated> {
        self.evaluate_row_with(label, model, data, limit, None)
    }

    /// [`evaluate_row`](Self::evaluate_row) with another number of epochs.
    pub fn evaluate_row_with(
        &mut self,
        label: &str,
        model: &ModelConfig,
        data: &DataConfig,
        limit: Option<usize>,
        epochs: Option<usize>,
    ) -> Result<Evaluated> {
        let mut out = Evaluated {
            canonical: Vec::new(),
            rotated: Vec::new(),
            params: 0,
            seconds: 0.0,
            lrs: Vec::new(),
        };
        // The non-equivariant baselines (identity and random-global frames) are sensitive to
        // the learning rate (plain PointNet++ does not train at all at the default): they get a
        // small sweep selected on the validation set. Equivariant rows use the default, untuned.
        use tf_models::FrameChoice;
        let baseline = matches!(
            model.frames().kind,
            FrameChoice::Identity | FrameChoice::RandomGlobal
        );
        let default_lr = self.train_config().lr;
        let lrs: Vec<f64> = if baseline && self.mode != Mode::Smoke {
            BASELINE_LRS.to_vec()
        } else {
            vec![default_lr]
        };
        for seed in self.seeds.clone() {
            let mut best: Option<(f64, Fitted)> = None;
            for &lr in &lrs {
                let mut t = self.train_config();
                t.seed = seed;
                t.lr = lr;
                if let Some(e) = epochs {
                    t.epochs = e;
                }
                let fitted = self.fit(label, model.clone(), data.clone(), t, limit)?;
                let primary = tf_train::primary_name(fitted.model.head());
                let score = fitted
                    .history
                    .last()
                    .and_then(|r| r.val.get(primary).copied())
                    .unwrap_or(f64::NEG_INFINITY);
                out.seconds += fitted.seconds;
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, fitted));
                }
            }
            let Some((_, fitted)) = best else {
                bail!("no learning rate to try");
            };
            out.lrs.push(fitted.config.train.lr);
            out.canonical.push(self.test(&fitted, false)?);
            out.rotated.push(self.test(&fitted, true)?);
            out.params = fitted.model.params();
            tracing::info!(row = label, seed, canonical = ?out.canonical.last(), rotated = ?out.rotated.last(), "row");
        }
        Ok(out)
    }
}
