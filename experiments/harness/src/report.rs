//! Tables: rows of mean +- std over seeds, written as Markdown and JSON with their provenance.

use anyhow::Result;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::Experiment;

/// Mean and standard deviation over seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
    /// Number of values.
    pub n: usize,
    /// The values.
    pub values: Vec<f64>,
}

impl Stat {
    /// From per-seed values.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Self {
            mean,
            std,
            n,
            values: values.to_vec(),
        }
    }
}

/// One table cell.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Cell {
    /// A statistic over seeds.
    Stat(Stat),
    /// A plain number (counts, seconds).
    Number(f64),
    /// Text.
    Text(String),
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Number(v)
    }
}

impl From<Stat> for Cell {
    fn from(s: Stat) -> Self {
        Cell::Stat(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.into())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl Cell {
    fn markdown(&self) -> String {
        match self {
            Cell::Stat(s) if s.n > 1 => format!("{:.4} ± {:.4}", s.mean, s.std),
            Cell::Stat(s) => format!("{:.4}", s.mean),
            Cell::Number(v) if v.fract() == 0.0 && v.abs() < 1e12 => format!("{v}"),
            Cell::Number(v) if v.abs() < 1e-3 && *v != 0.0 => format!("{v:.2e}"),
            Cell::Number(v) => format!("{v:.4}"),
            Cell::Text(t) => t.clone(),
        }
    }
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
    pub(crate) fn finish(&mut self, exp: &dyn Experiment, ctx: &Ctx) -> Result<()> {
        let name = exp.name();
        if !ctx.curves.is_empty() {
            let file = format!("{name}-curves.svg");
            tf_train::plot::curves_svg(
                &ctx.out.join(&file),
                &format!("{}: validation metric per epoch", exp.title()),
                "validation metric",
                &ctx.curves,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.figures.insert(0, file);
        }
        let seeds: Vec<String> = ctx.seeds.iter().map(|s| s.to_string()).collect();
        let mut md = format!("# {}\n\n", exp.title());
        md.push_str(&format!(
            "**Mode: {}**{}. Data: {}. Seeds: {}. Wall time: {:.0} s.\n\n",
            ctx.mode.name(),
            if ctx.mode == crate::Mode::Full {
                ""
            } else {
                " (reduced protocol: small data, short training; full mode replaces this file)"
            },
            ctx.describe_data(3),
            seeds.join(", "),
            self.seconds
        ));
        md.push_str(&format!(
            "**Paper's claim.** {}\n\nThe paper's exact numbers are not available offline, so none are \
             shown; the claim is checked against our own rows.\n\n",
            exp.claim()
        ));
        md.push_str(&format!("**Our result.** {}\n\n", self.verdict));
        md.push_str(&format!("| row | {} |\n", self.columns.join(" | ")));
        md.push_str(&format!("|---|{}\n", "---|".repeat(self.columns.len())));
        for r in &self.rows {
            let cells: Vec<String> = r.cells.iter().map(Cell::markdown).collect();
            md.push_str(&format!("| {} | {} |\n", r.label, cells.join(" | ")));
        }
        md.push('\n');
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
            "title": exp.title(),
            "claim": exp.claim(),
            "mode": ctx.mode.name(),
            "data": ctx.describe_data(3),
            "seeds": ctx.seeds,
            "seconds": self.seconds,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_cells_format() {
        let s = Stat::of(&[1.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert!((s.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(Cell::from(s).markdown(), "2.0000 ± 1.4142");
        assert_eq!(Cell::from(Stat::of(&[0.5])).markdown(), "0.5000");
        assert_eq!(Cell::from(12.0).markdown(), "12");
        assert_eq!(Cell::from(3e-7).markdown(), "3.00e-7");
    }
}
