//! The binary runs end to end in smoke mode and writes its table.

#[test]
fn smoke_run_writes_the_table() -> anyhow::Result<()> {
    tf_experiments::smoke_test(env!("CARGO_BIN_EXE_overhead"), "overhead", 8)?;
    Ok(())
}
