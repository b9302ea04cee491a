//! The index `reproduce` writes: a table's verdict from a `--data` subfolder appears in the main
//! summary, with a link into that folder.

use std::process::Command;

#[test]
fn the_main_summary_repeats_the_real_data_verdicts() {
    let out = tempfile::tempdir().expect("tempdir");
    let sub = out.path().join("kicad-test");
    std::fs::create_dir_all(&sub).expect("subfolder");
    std::fs::write(sub.join("summary.md"), "# Reproduction summary\n").expect("sub summary");
    std::fs::write(
        sub.join("t1-normals.json"),
        r#"{"mode": "standard", "seconds": 12.0, "train_seconds": 7200.0,
            "report": {"verdict": "made-up verdict: confirmed | twice"}}"#,
    )
    .expect("sub table");
    let status = Command::new(env!("CARGO_BIN_EXE_reproduce"))
        .args(["--smoke", "--only", "equivariance-models", "--runs"])
        .arg(out.path().join("runs"))
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run reproduce");
    assert!(status.success());
    let summary = std::fs::read_to_string(out.path().join("summary.md")).expect("summary");
    assert!(summary.contains("](equivariance-models.md)"), "{summary}");
    assert!(
        summary.contains("## The same tables on `--data kicad-test`"),
        "{summary}"
    );
    let line = summary
        .lines()
        .find(|l| l.contains("](kicad-test/t1-normals.md)"))
        .unwrap_or_else(|| panic!("no real-data line in {summary}"));
    // The verdict's pipe must not break the table row.
    assert!(
        line.contains("made-up verdict: confirmed / twice"),
        "{line}"
    );
    assert!(line.contains("| standard | 12 s | 2.0 h |"), "{line}");
}
