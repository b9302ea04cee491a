//! Hostile bytes against every reader: random bytes and random mutations (byte flips,
//! truncations, inserted digits, duplicated spans) of valid PLY (ASCII and binary), OFF, OBJ,
//! STL (ASCII and binary), text, PCD, NPY, LAS and gzipped files. Each case must end in `Ok` or a
//! clean error: no panic (a panic fails the test), no hang (each case is timed) and no
//! allocation beyond what the file can hold (the readers bound every count by the file size,
//! and decompression by `TF_MAX_DECOMPRESSED_BYTES`; a runaway allocation would abort or time
//! out here).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tf_datasets::{parse_pcd, read_mesh, read_npy_points, read_ply_points, read_points};

/// Longest a single read may take.
const BUDGET: Duration = Duration::from_secs(2);

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut binary_ply = b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n".to_vec();
    for v in [0f32, 0., 0., 1., 0., 0., 0., 1., 0.] {
        binary_ply.extend_from_slice(&v.to_le_bytes());
    }
    binary_ply.push(3);
    for i in [0i32, 1, 2] {
        binary_ply.extend_from_slice(&i.to_le_bytes());
    }
    let mut binary_stl = vec![0u8; 80];
    binary_stl.extend_from_slice(&1u32.to_le_bytes());
    for v in [0f32, 0., 1., 0., 0., 0., 1., 0., 0., 0., 1., 0.] {
        binary_stl.extend_from_slice(&v.to_le_bytes());
    }
    binary_stl.extend_from_slice(&[0, 0]);
    let mut npy = Vec::new();
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    npy.extend_from_slice(b"\x93NUMPY\x01\x00");
    npy.extend_from_slice(&(h.len() as u16).to_le_bytes());
    npy.extend_from_slice(h.as_bytes());
    for v in [0f64, 1., 2., 3., 4., 5.] {
        npy.extend_from_slice(&v.to_le_bytes());
    }
    let off = b"OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n".to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&off).unwrap();
    let las_bytes = {
        let mut b = las::Builder::from((1, 2));
        b.point_format = las::point::Format::new(2).unwrap();
        let header = b.into_header().unwrap();
        let mut w = las::Writer::new(std::io::Cursor::new(Vec::new()), header).unwrap();
        for i in 0..3 {
            w.write_point(las::Point {
                x: i as f64,
                y: 1.0,
                z: 2.0,
                color: Some(las::Color::new(1, 2, 3)),
                ..Default::default()
            })
            .unwrap();
        }
        w.into_inner().unwrap().into_inner()
    };
    vec![
        ("las", las_bytes),
        ("ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nproperty float nx\nproperty float ny\nproperty float nz\nend_header\n0 0 0 0 0 1\n1 0 0 0 0 1\n0 1 0 0 0 1\n".to_vec()),
        ("ply", binary_ply),
        ("off", off),
        ("off.gz", gz.finish().unwrap()),
        ("obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1\n".to_vec()),
        ("stl", b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid a\n".to_vec()),
        ("stl", binary_stl),
        ("xyz", b"0 0 0 0 0 1\n1 0 0 0 0 1\n0 1 0 0 0 1\n".to_vec()),
        ("pcd", b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n0 0 0\n1 2 3\n".to_vec()),
        ("npy", npy),
    ]
}

/// Every reader that takes this extension, on `path`; `Err` values are fine, panics are not.
fn read_all(ext: &str, path: &Path, bytes: &[u8]) {
    match ext {
        "ply" => {
            let _ = read_ply_points(path);
            let _ = read_mesh(path);
        }
        "off" | "off.gz" | "obj" | "stl" => {
            let _ = read_mesh(path);
        }
        "xyz" => {
            let _ = read_points(path);
        }
        "pcd" => {
            let _ = parse_pcd(bytes, path);
        }
        "npy" => {
            let _ = read_npy_points(path);
        }
        "las" => {
            let _ = tf_datasets::read_las(path);
        }
        _ => unreachable!(),
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        // Long digit runs: huge counts in headers.
        (
            any::<usize>(),
            prop::collection::vec(prop::sample::select(b"0123456789 9\n-".to_vec()), 1..24)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), any::<usize>(), 1usize..64)
            .prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            let i = i % len;
            if i < bytes.len() {
                bytes[i] ^= b | 1;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Insert(i, v) => {
            let i = i % (bytes.len() + 1);
            bytes.splice(i..i, v.iter().copied());
        }
        Mutation::Duplicate(a, b, n) => {
            let a = a % len;
            let end = (a + n).min(bytes.len());
            let span = bytes.get(a..end).map(<[u8]>::to_vec).unwrap_or_default();
            let b = b % (bytes.len() + 1);
            bytes.splice(b..b, span);
        }
    }
}

fn check(ext: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("case.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    let start = Instant::now();
    read_all(ext, &path, bytes);
    prop_assert!(
        start.elapsed() < BUDGET,
        "{ext}: {:?} for {} bytes",
        start.elapsed(),
        bytes.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(tf_testing::config(96))]

    #[test]
    fn mutated_files_are_read_or_refused(which in 0usize..11, muts in prop::collection::vec(mutation(), 1..6)) {
        let all = seeds();
        let (ext, mut bytes) = all[which % all.len()].clone();
        // The unmutated seed is valid.
        check(ext, &bytes)?;
        for m in &muts {
            apply(&mut bytes, m);
        }
        check(ext, &bytes)?;
    }

    #[test]
    fn random_bytes_are_refused(which in 0usize..11, bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let all = seeds();
        let (ext, seed) = &all[which % all.len()];
        // Random bytes, and random bytes after a valid header's first line.
        check(ext, &bytes)?;
        let first = seed.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
        let mut with_header = seed[..first].to_vec();
        with_header.extend_from_slice(&bytes);
        check(ext, &with_header)?;
    }
}
