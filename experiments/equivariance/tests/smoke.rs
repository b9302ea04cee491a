//! The binary runs end to end in smoke mode and writes its table.
#![allow(clippy::unwrap_used)]

#[test]
fn smoke_run_writes_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_equivariance"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .arg("--runs")
        .arg(dir.path().join("runs"))
        .status()
        .unwrap();
    assert!(status.success());
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("equivariance-models.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["mode"], "smoke");
    assert_eq!(json["report"]["rows"].as_array().unwrap().len(), 8);
    let md = std::fs::read_to_string(out.join("equivariance-models.md")).unwrap();
    assert!(md.contains("Paper's claim") && md.contains("Mode: smoke"));
    // The layer table is written next to it.
    let layers: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("equivariance.json")).unwrap())
            .unwrap();
    assert!(!layers["rows"].as_array().unwrap().is_empty());
    assert!(json["report"]["verdict"]
        .as_str()
        .unwrap()
        .contains("confirmed (below 1e-9)"));
}
