//! The binary runs end to end in smoke mode, writes both tables, and finds no error above 1e-9.

#[test]
fn smoke_run_writes_the_table() -> anyhow::Result<()> {
    let (json, dir) =
        tf_experiments::smoke_test(env!("CARGO_BIN_EXE_equivariance"), "equivariance-models", 9)?;
    // The layer table is written next to it.
    let layers: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir.path().join("results/equivariance.json"),
    )?)?;
    anyhow::ensure!(layers["rows"].as_array().is_some_and(|r| !r.is_empty()));
    let verdict = json["report"]["verdict"].as_str().unwrap_or_default();
    anyhow::ensure!(
        verdict.contains("exact to float precision (below 1e-9)"),
        "{verdict}"
    );
    Ok(())
}
