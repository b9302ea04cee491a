//! Tables: rows of mean +- std over seeds, written as Markdown and JSON with their provenance.

use anyhow::Result;
use serde::Serialize;

use crate::ctx::{Ctx, Mode};
use crate::stat::Cell;

/// What a report is about: the experiment's file stem, title and the paper's claim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    pub(crate) name: &'a str,
    pub(crate) title: &'a str,
    pub(crate) claim: &'a str,
}

/// A table row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// First column.
    pub label: String,
    /// The other columns.
    pub cells: Vec<Cell>,
}

/// What an experiment produced.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Column headers after the row label.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Row>,
    /// Whether our numbers confirm the paper's claim, and why (computed from the numbers).
    pub verdict: String,
    /// Further remarks (protocol differences, caveats).
    pub notes: Vec<String>,
    /// Extra machine-readable results.
    pub extra: serde_json::Value,
    /// Extra figures written by the experiment (file names in the output folder).
    pub figures: Vec<String>,
    /// Wall time of the experiment.
    pub seconds: f64,
    /// The data, for experiments that do not use the point-cloud sets (default: the mode's
    /// point-cloud data).
    #[serde(skip)]
    pub data: Option<String>,
    /// The protocol, for experiments that train their own way (default: the harness's).
    #[serde(skip)]
    pub protocol: Option<String>,
    /// The epoch cap of the runs, for experiments that train their own way.
    #[serde(skip)]
    pub epoch_cap: Option<usize>,
    /// What the table says about published numbers (default: that the paper's are not
    /// available offline).
    #[serde(skip)]
    pub published: Option<String>,
}

impl Report {
    /// Empty report with these columns.
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            extra: serde_json::Value::Null,
            ..Default::default()
        }
    }

    /// Appends a row.
    pub fn row(&mut self, label: &str, cells: Vec<Cell>) {
        self.rows.push(Row {
            label: label.into(),
            cells,
        });
    }

    /// Writes `<name>.md`, `<name>.json` and the curves, atomically.
    pub(crate) fn finish(&mut self, exp: &About, ctx: &Ctx) -> Result<()> {
        let name = exp.name;
        if !ctx.curves.is_empty() {
            let file = format!("{name}-curves.svg");
            tf_train::plot::curves_svg(
                &ctx.out.join(&file),
                &format!("{}: validation metric per epoch", exp.title),
                "validation metric",
                &ctx.curves,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.figures.insert(0, file);
        }
        let seeds: Vec<String> = ctx.seeds.iter().map(|s| s.to_string()).collect();
        let mut md = format!("# {}\n\n", exp.title);
        if !ctx.mode.is_evidence() {
            md.push_str(&format!(
                "**{} run: not evidence.** It checks that the pipeline runs and gives a first \
                 look at the numbers; with one seed and a short fixed budget no claim is \
                 confirmed or contradicted here. The standard-mode tables \
                 (`papers/tensor-frames/results/`) are the evidence.\n\n",
                if ctx.mode == Mode::Quick {
                    "Quick"
                } else {
                    "Smoke"
                }
            ));
        }
        let data = self.data.clone().unwrap_or_else(|| ctx.describe_data(3));
        let protocol = self.protocol.clone().unwrap_or_else(|| ctx.protocol());
        md.push_str(&format!(
            "**Mode: {}.** Data: {}. Seeds: {}. Protocol: {}. Wall time: {:.0} s; training time of \
             the runs used: {:.0} s.\n\n",
            ctx.mode.name(),
            data,
            seeds.join(", "),
            protocol,
            self.seconds,
            ctx.train_seconds
        ));
        let published = self.published.clone().unwrap_or_else(|| {
            "The paper's exact numbers are not available offline, so none are shown; the claim \
             is checked against our own rows."
                .to_string()
        });
        md.push_str(&format!(
            "**Paper's claim.** {}\n\n{published}\n\n",
            exp.claim
        ));
        md.push_str(&format!("**Our result.** {}\n\n", self.verdict));
        md.push_str(&format!("| row | {} |\n", self.columns.join(" | ")));
        md.push_str(&format!("|---|{}\n", "---|".repeat(self.columns.len())));
        for r in &self.rows {
            let cells: Vec<String> = r.cells.iter().map(Cell::markdown).collect();
            md.push_str(&format!("| {} | {} |\n", r.label, cells.join(" | ")));
        }
        md.push('\n');
        let (runs, capped) = ctx.runs_capped;
        if capped > 0 {
            self.notes.push(format!(
                "{capped} of the {runs} training runs behind this table reached the {}-epoch cap \
                 before early stopping ended them: their scores are what that budget allows, \
                 not converged values (every row had the same cap).",
                self.epoch_cap.unwrap_or(ctx.train_config().epochs)
            ));
        }
        for n in &self.notes {
            md.push_str(&format!("- {n}\n"));
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
        for f in &self.figures {
            md.push_str(&format!("![{f}]({f})\n\n"));
        }
        md.push_str(&format!("Command: `{}`\n", ctx.command));
        let json = serde_json::json!({
            "experiment": name,
            "title": exp.title,
            "claim": exp.claim,
            "mode": ctx.mode.name(),
            "data": data,
            "seeds": ctx.seeds,
            "seconds": self.seconds,
            "train_seconds": ctx.train_seconds,
            "protocol": protocol,
            "command": ctx.command,
            "report": self,
        });
        tf_train::write_atomic(&ctx.out.join(format!("{name}.md")), &md)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tf_train::write_atomic(
            &ctx.out.join(format!("{name}.json")),
            &serde_json::to_string_pretty(&json)?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}
