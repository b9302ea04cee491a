//! Table cells: a statistic over seeds, a number or text.

use serde::Serialize;

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
    pub(crate) fn markdown(&self) -> String {
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
