//! A gzipped input that inflates beyond the limit fails cleanly instead of filling memory; the
//! limit is raised or lowered by an environment variable (alone in this test binary, since the
//! environment is shared by the tests of one process).
#![allow(clippy::unwrap_used)]

use std::io::Write;

use tf_datasets::{read_mesh, MAX_DECOMPRESSED_ENV};

#[test]
fn gzip_bombs_stop_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MB of zeros compress to about 64 KB.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let path = dir.path().join("bomb.off.gz");
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    std::env::set_var(MAX_DECOMPRESSED_ENV, (8u64 << 20).to_string());
    let e = read_mesh(&path).unwrap_err().to_string();
    assert!(e.contains("decompresses to more than 8388608 bytes"), "{e}");
    assert!(e.contains(MAX_DECOMPRESSED_ENV), "{e}");
    // Raised, the same file is read (and then refused for what it is: not an OFF mesh).
    std::env::set_var(MAX_DECOMPRESSED_ENV, (128u64 << 20).to_string());
    let e = read_mesh(&path).unwrap_err().to_string();
    assert!(!e.contains("decompresses"), "{e}");
}
