//! Mesh readers on a cube written in every format, and malformed fixtures.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tf_datasets::*;

/// Unit cube centred at the origin, faces counter-clockwise seen from outside.
fn cube() -> (Vec<[f64; 3]>, Vec<[u32; 4]>) {
    let v: Vec<[f64; 3]> = (0..8)
        .map(|i| {
            [
                (i & 1) as f64 - 0.5,
                ((i >> 1) & 1) as f64 - 0.5,
                ((i >> 2) & 1) as f64 - 0.5,
            ]
        })
        .collect();
    let f = vec![
        [0, 2, 3, 1],
        [4, 5, 7, 6],
        [0, 1, 5, 4],
        [2, 6, 7, 3],
        [0, 4, 6, 2],
        [1, 3, 7, 5],
    ];
    (v, f)
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tf-meshes-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn off_text() -> String {
    let (v, f) = cube();
    let mut s = format!("OFF\n# a cube\n{} {} 0\n", v.len(), f.len());
    v.iter()
        .for_each(|p| s += &format!("{} {} {}\n", p[0], p[1], p[2]));
    f.iter()
        .for_each(|q| s += &format!("4 {} {} {} {}\n", q[0], q[1], q[2], q[3]));
    s
}

fn obj_text() -> String {
    let (v, f) = cube();
    let mut s = String::from("# cube\no cube\n");
    v.iter()
        .for_each(|p| s += &format!("v {} {} {}\n", p[0], p[1], p[2]));
    s += "vn 0 0 1\n";
    for (i, q) in f.iter().enumerate() {
        if i == 0 {
            // negative (relative) indices
            s += &format!(
                "f {} {} {} {}\n",
                q[0] as i64 - 8,
                q[1] as i64 - 8,
                q[2] as i64 - 8,
                q[3] as i64 - 8
            );
        } else {
            s += &format!(
                "f {}//1 {}/1/1 {} {}\n",
                q[0] + 1,
                q[1] + 1,
                q[2] + 1,
                q[3] + 1
            );
        }
    }
    s
}

fn triangles() -> Vec<[[f64; 3]; 3]> {
    let (v, f) = cube();
    f.iter()
        .flat_map(|q| {
            [
                [v[q[0] as usize], v[q[1] as usize], v[q[2] as usize]],
                [v[q[0] as usize], v[q[2] as usize], v[q[3] as usize]],
            ]
        })
        .collect()
}

fn stl_ascii() -> String {
    let mut s = String::from("solid cube\n");
    for t in triangles() {
        s += "facet normal 0 0 0\nouter loop\n";
        t.iter()
            .for_each(|p| s += &format!("vertex {} {} {}\n", p[0], p[1], p[2]));
        s += "endloop\nendfacet\n";
    }
    s + "endsolid cube\n"
}

fn stl_binary() -> Vec<u8> {
    let tris = triangles();
    let mut b = vec![0u8; 80];
    b.extend_from_slice(&(tris.len() as u32).to_le_bytes());
    for t in tris {
        b.extend_from_slice(&[0u8; 12]);
        t.iter()
            .flatten()
            .for_each(|c| b.extend_from_slice(&(*c as f32).to_le_bytes()));
        b.extend_from_slice(&[0u8; 2]);
    }
    b
}

fn ply(format: &str) -> Vec<u8> {
    let (v, f) = cube();
    let mut b = format!("ply\nformat {format} 1.0\ncomment cube\nelement vertex 8\nproperty float x\nproperty float y\nproperty float z\nelement face 6\nproperty list uchar int vertex_indices\nend_header\n").into_bytes();
    let big = format.contains("big");
    let f32b = |x: f32| {
        if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    };
    let i32b = |x: i32| {
        if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    };
    if format == "ascii" {
        v.iter()
            .for_each(|p| b.extend(format!("{} {} {}\n", p[0], p[1], p[2]).bytes()));
        f.iter()
            .for_each(|q| b.extend(format!("4 {} {} {} {}\n", q[0], q[1], q[2], q[3]).bytes()));
    } else {
        v.iter()
            .flatten()
            .for_each(|c| b.extend_from_slice(&f32b(*c as f32)));
        for q in &f {
            b.push(4);
            q.iter().for_each(|i| b.extend_from_slice(&i32b(*i as i32)));
        }
    }
    b
}

/// The cube as two VRML face sets (three faces each), as KiCad exports parts.
fn wrl_text() -> String {
    let (v, f) = cube();
    let mut s = String::from("#VRML V2.0 utf8\n# comment [ with brackets ]\n");
    for half in f.chunks(3) {
        s += "Shape { appearance Appearance { material DEF M Material { diffuseColor 1 0 0 } }\n";
        s += "geometry IndexedFaceSet { creaseAngle 0.5\ncoordIndex [";
        for q in half {
            s += &format!("{},{},{},{},-1,", q[0], q[1], q[2], q[3]);
        }
        s += "]\ncoord Coordinate { point [";
        for p in &v {
            s += &format!("{} {} {},", p[0], p[1], p[2]);
        }
        s += "] } } }\n";
    }
    s
}

/// A binary PLY whose one face claims 4 billion vertex indices.
fn huge_list_ply() -> Vec<u8> {
    let mut b = b"ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uint int vertex_indices\nend_header\n".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&[0u8; 8]);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(d: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn the_cube_reads_the_same_in_every_format_and_samples_correctly() {
    let d = dir("formats");
    let files = [
        write(&d, "cube.off", off_text().as_bytes()),
        write(&d, "cube.obj", obj_text().as_bytes()),
        write(&d, "cube.stl", stl_ascii().as_bytes()),
        write(&d, "cube_bin.stl", &stl_binary()),
        write(&d, "cube.ply", &ply("ascii")),
        write(&d, "cube_le.ply", &ply("binary_little_endian")),
        write(&d, "cube_be.ply", &ply("binary_big_endian")),
        write(&d, "cube.ply.gz", &gz(&ply("ascii"))),
        write(&d, "cube.off.gz", &gz(off_text().as_bytes())),
        write(&d, "cube.wrl", wrl_text().as_bytes()),
    ];
    for f in &files {
        let m = read_mesh(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(m.triangles.len(), 12, "{}", f.display());
        // The cube's 8 corners once (STL's per-triangle copies are welded), except in the VRML
        // file, whose two face sets each list their own corners (as KiCad writes them).
        let corners = if f.extension().is_some_and(|e| e == "wrl") {
            16
        } else {
            8
        };
        assert_eq!(m.vertices.len(), corners, "{}", f.display());
        for normals in [MeshNormals::Face, MeshNormals::Interpolated] {
            let s = m
                .sample(3000, normals, 0.0, 7, &mut ChaCha8Rng::seed_from_u64(1))
                .unwrap();
            assert_eq!((s.len(), s.label), (3000, 7));
            let mut per_face = [0usize; 6];
            for (p, n) in s.points.chunks_exact(3).zip(s.normals.chunks_exact(3)) {
                // on the surface, outward
                let m = p.iter().fold(0.0f64, |a, b| a.max(b.abs()));
                assert!(
                    (m - 0.5).abs() < 1e-9,
                    "{} off the surface: {p:?}",
                    f.display()
                );
                assert!(
                    p[0] * n[0] + p[1] * n[1] + p[2] * n[2] > 0.0,
                    "{}: inward normal",
                    f.display()
                );
                if normals == MeshNormals::Face {
                    let axis = (0..3).find(|&a| (p[a].abs() - 0.5).abs() < 1e-9).unwrap();
                    assert!((n[axis].abs() - 1.0).abs() < 1e-9);
                    per_face[2 * axis + usize::from(p[axis] > 0.0)] += 1;
                }
            }
            if normals == MeshNormals::Face {
                for c in per_face {
                    assert!(
                        (c as f64 / 3000.0 - 1.0 / 6.0).abs() < 0.03,
                        "{}: {per_face:?}",
                        f.display()
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn malformed_meshes_are_errors_naming_the_problem() {
    let d = dir("bad");
    let full = ply("binary_little_endian");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short.off", b"OFF\n8 6 0\n0 0 0\n".to_vec(), "file ends"),
        ("fourd.off", b"4OFF\n1 0 0\n0 0 0 0\n".to_vec(), "only 3D"),
        ("huge.off", b"OFF\n999999999999 999999999999 0\n0 0 0\n".to_vec(), "file ends"),
        ("hugelist.ply", huge_list_ply(), "truncated"),
        ("badindex.off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n".to_vec(), "vertex 7"),
        ("nan.off", b"OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n".to_vec(), "non-finite"),
        ("word.off", b"OFF\n3 1 0\n0 0 zero\n1 0 0\n0 1 0\n3 0 1 2\n".to_vec(), ":3:"),
        ("noheader.off", b"3 1 0\n".to_vec(), "missing OFF header"),
        ("ahead.obj", b"v 0 0 0\nf 1 2 3\n".to_vec(), ":2:"),
        ("two.obj", b"v 0 0 0\nv 1 0 0\nf 1 2\n".to_vec(), "at least three"),
        ("empty.obj", b"# nothing\n".to_vec(), "no faces"),
        ("trunc.ply", full[..full.len() - 7].to_vec(), "truncated"),
        ("trunc.stl", stl_binary()[..200].to_vec(), "truncated"),
        ("facet.stl", b"solid x\nfacet normal 0 0 0\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\nendfacet\nendsolid\n".to_vec(), "2 vertices"),
        ("noend.ply", b"ply\nformat ascii 1.0\n".to_vec(), "end_header"),
        ("cube.xyz", b"0 0 0\n".to_vec(), "unknown mesh format"),
        ("bad.ply.gz", b"not gzip".to_vec(), "gzip"),
        ("index.wrl", b"Shape { geometry IndexedFaceSet { coordIndex [0 1 5 -1] coord Coordinate { point [0 0 0, 1 0 0, 0 1 0] } } }".to_vec(), "coordIndex 5"),
        ("open.wrl", b"Shape { geometry IndexedFaceSet { coordIndex [0 1 2 -1] coord Coordinate { point [0 0 0, 1 0".to_vec(), "file ends"),
    ];
    for (name, bytes, what) in cases {
        let p = write(&d, name, &bytes);
        let e = read_mesh(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(what), "{name}: {e}");
    }
    // variants real files use: COFF with colours, counts on the header line, comments
    let coff = write(&d, "c.off", b"# made by hand\nCOFF 3 1 0\n0 0 0 1 2 3 255\n1 0 0 1 2 3 255\n0 1 0 1 2 3 255\n3 0 1 2 10 .7 0\n");
    assert_eq!(read_mesh(&coff).unwrap().triangles, vec![[0, 1, 2]]);
    // a mesh without area cannot be sampled
    let flat = write(
        &d,
        "flat.off",
        b"OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n",
    );
    let m = read_mesh(&flat).unwrap();
    assert!(m
        .sample(
            10,
            MeshNormals::Face,
            0.0,
            0,
            &mut ChaCha8Rng::seed_from_u64(0)
        )
        .is_err());
    assert!(read_mesh(&d.join("missing.off")).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

/// PLY point clouds as Open3D, PCL and CloudCompare write them (no faces; normals and colours
/// as extra vertex properties, ASCII or binary) read as points with their normals; a mesh
/// reader still wants faces; hostile element counts fail at once.
#[test]
fn ply_point_clouds_read_with_their_normals() {
    let d = dir("ply-cloud");
    let pts = [[0.5f32, -1.0, 2.0], [3.0, 0.25, -0.75]];
    let nrm = [[0.0f32, 0.0, 1.0], [0.6, 0.8, 0.0]];
    let header = |format: &str| {
        format!(
            "ply\nformat {format} 1.0\nelement vertex 2\nproperty float x\nproperty float y\n\
             property float z\nproperty float nx\nproperty float ny\nproperty float nz\n\
             property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
        )
    };
    let mut binary = header("binary_little_endian").into_bytes();
    for (p, n) in pts.iter().zip(&nrm) {
        for v in p.iter().chain(n) {
            binary.extend_from_slice(&v.to_le_bytes());
        }
        binary.extend_from_slice(&[10, 20, 30]);
    }
    let mut ascii = header("ascii");
    for (p, n) in pts.iter().zip(&nrm) {
        ascii += &format!(
            "{} {} {} {} {} {} 10 20 30\n",
            p[0], p[1], p[2], n[0], n[1], n[2]
        );
    }
    let plain = "ply\nformat ascii 1.0\nelement vertex 2\nproperty double x\nproperty double y\nproperty double z\nend_header\n0.5 -1 2\n3 0.25 -0.75\n";
    let want_points: Vec<f64> = pts.iter().flatten().map(|&v| f64::from(v)).collect();
    let want_normals: Vec<f64> = nrm.iter().flatten().map(|&v| f64::from(v)).collect();
    for (name, bytes, normals) in [
        ("cloud_bin.ply", binary, true),
        ("cloud.ply", ascii.into_bytes(), true),
        ("plain.ply", plain.as_bytes().to_vec(), false),
    ] {
        let p = write(&d, name, &bytes);
        let (points, n) = read_ply_points(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
        };
        assert!(close(&points, &want_points), "{name}: {points:?}");
        assert_eq!(n.is_some(), normals, "{name}");
        if let Some(n) = n {
            assert!(close(&n, &want_normals), "{name}: {n:?}");
        }
        let e = read_mesh(&p).unwrap_err().to_string();
        assert!(e.contains("no faces"), "{e}");
    }
    // An element without properties announcing 2^64 - 1 entries, and a count beyond the file.
    let spin =
        "ply\nformat binary_little_endian 1.0\nelement junk 18446744073709551615\nend_header\n";
    let p = write(&d, "spin.ply", spin.as_bytes());
    let e = read_ply_points(&p).unwrap_err().to_string();
    assert!(e.contains("no properties"), "{e}");
    let big = "ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n";
    let p = write(&d, "big.ply", big.as_bytes());
    let e = read_ply_points(&p).unwrap_err().to_string();
    assert!(e.contains("announces"), "{e}");
}
