//! The trait every paper-table experiment implements.

use crate::ctx::Ctx;
use crate::report::Report;

/// One paper table (or figure).
pub trait Experiment {
    /// File stem of the outputs, e.g. `t1-normals`.
    fn name(&self) -> &'static str;
    /// Human title, e.g. "T1: normal regression".
    fn title(&self) -> &'static str;
    /// The paper's claim this table tests (never a number we do not have).
    fn claim(&self) -> &'static str;
    /// Trains and evaluates; fills the report.
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report>;
}
