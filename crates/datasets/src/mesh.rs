//! Triangle meshes (OFF, OBJ, STL ASCII/binary, PLY ASCII/binary, VRML 2 face sets, any of them gzipped as
//! `*.gz`) and area-weighted surface sampling with exact normals.
//!
//! Polygons are split into triangle fans. Face normals follow the winding order (right hand);
//! a mesh whose faces are inconsistently oriented gives inconsistently oriented normals, as it
//! would in any pipeline. Errors name `file:line` for text formats and the byte offset for
//! binary ones: missing or extra values, non-finite coordinates, faces that index missing
//! vertices, truncated binary files, meshes without faces or area.

use std::io::Read;
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::DataError;
use crate::shape::Shape;

/// A triangle mesh in 3D.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// Vertices.
    pub vertices: Vec<[f64; 3]>,
    /// Triangles as vertex indices.
    pub triangles: Vec<[u32; 3]>,
}

/// Which normals sampled points get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshNormals {
    /// The exact normal of the triangle the point lies on.
    Face,
    /// Area-weighted vertex normals interpolated barycentrically (smooth across edges).
    Interpolated,
}

/// The mesh file endings [`read_mesh`] reads (each optionally followed by `.gz`).
pub const MESH_EXTENSIONS: [&str; 5] = [".off", ".obj", ".stl", ".ply", ".wrl"];

/// True when `path` names a mesh [`read_mesh`] reads, by its ending (case-insensitive).
pub fn is_mesh_path(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    MESH_EXTENSIONS.iter().any(|e| name.ends_with(e))
}

/// Reads a mesh, choosing the format by extension ([`MESH_EXTENSIONS`], each optionally
/// followed by `.gz`).
pub fn read_mesh(path: &Path) -> Result<Mesh, DataError> {
    let (ext, bytes) = read_bytes(path)?;
    let mesh = match ext.as_str() {
        "off" => parse_off(path, text(path, &bytes)?)?,
        "obj" => parse_obj(path, text(path, &bytes)?)?,
        "stl" => parse_stl(path, &bytes)?,
        "ply" => parse_ply(path, &bytes)?.0,
        "wrl" => parse_wrl(path, text(path, &bytes)?)?,
        _ => {
            return Err(DataError::layout(
                path,
                format!(
                    "unknown mesh format (expected {}, optionally .gz)",
                    MESH_EXTENSIONS.join(", ")
                ),
            ))
        }
    };
    validate(path, mesh)
}

/// The vertices of a PLY file, with or without faces (a point cloud as Open3D, PCL,
/// CloudCompare and MeshLab write it, ASCII or binary, optionally gzipped), and their normals
/// if the vertices carry `nx ny nz`: `(points n * 3, normals n * 3)`. Other vertex properties
/// (colours, intensity) are read past.
pub fn read_ply_points(path: &Path) -> Result<(Vec<f64>, Option<Vec<f64>>), DataError> {
    let (points, normals, _) = read_ply_cloud(path)?;
    Ok((points, normals))
}

/// Points, normals if stored, and other vertex properties by name.
pub type PlyCloud = (Vec<f64>, Option<Vec<f64>>, crate::cloud::Extras);

/// [`read_ply_points`], with every other scalar vertex property (colours, intensity,
/// curvature, ...) by name, in file order, so it can be carried to an output.
pub fn read_ply_cloud(path: &Path) -> Result<PlyCloud, DataError> {
    let (ext, bytes) = read_bytes(path)?;
    if ext != "ply" {
        return Err(DataError::layout(path, "not a .ply file"));
    }
    let (mesh, normals, extras) = parse_ply(path, &bytes)?;
    if mesh.vertices.is_empty() {
        return Err(DataError::layout(path, "the PLY file has no vertices"));
    }
    Ok((
        mesh.vertices.iter().flatten().copied().collect(),
        normals.map(|n| n.iter().flatten().copied().collect()),
        extras,
    ))
}

/// The environment variable that raises (or lowers) the most bytes a `.gz` input may inflate
/// to; 4 GiB by default.
pub const MAX_DECOMPRESSED_ENV: &str = "TF_MAX_DECOMPRESSED_BYTES";

fn max_decompressed_bytes() -> u64 {
    std::env::var(MAX_DECOMPRESSED_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(4 << 30)
}

/// A file's bytes (decompressed when its name ends in `.gz`) and its lower-case extension
/// without the `.gz`.
fn read_bytes(path: &Path) -> Result<(String, Vec<u8>), DataError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(s) => (s.to_string(), true),
        None => (name.clone(), false),
    };
    let mut bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if gz {
        // A few megabytes of gzip can inflate to gigabytes: stop at the limit.
        let limit = max_decompressed_bytes();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::layout(path, format!("not a valid gzip file: {e}")))?;
        if out.len() as u64 > limit {
            return Err(DataError::layout(
                path,
                format!(
                    "decompresses to more than {limit} bytes; raise {MAX_DECOMPRESSED_ENV} if \
                     the file is genuine"
                ),
            ));
        }
        bytes = out;
    }
    let ext = stem.rsplit('.').next().unwrap_or("").to_string();
    Ok((ext, bytes))
}

fn text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes).map_err(|_| DataError::layout(path, "not a text file"))
}

fn validate(path: &Path, mesh: Mesh) -> Result<Mesh, DataError> {
    if mesh.triangles.is_empty() {
        return Err(DataError::layout(path, "the mesh has no faces"));
    }
    let n = mesh.vertices.len() as u32;
    if let Some((f, t)) = mesh
        .triangles
        .iter()
        .enumerate()
        .find(|(_, t)| t.iter().any(|&v| v >= n))
    {
        return Err(DataError::layout(
            path,
            format!(
                "face {f} uses vertex {} but there are {n} vertices",
                t.iter().max().unwrap_or(&0)
            ),
        ));
    }
    if let Some(i) = mesh
        .vertices
        .iter()
        .position(|v| v.iter().any(|c| !c.is_finite()))
    {
        return Err(DataError::layout(
            path,
            format!("vertex {i} has a non-finite coordinate"),
        ));
    }
    Ok(mesh)
}

fn num<T: std::str::FromStr>(
    path: &Path,
    line: usize,
    s: Option<&str>,
    what: &str,
) -> Result<T, DataError> {
    let s = s.ok_or_else(|| DataError::parse(path, line, format!("missing {what}")))?;
    s.parse()
        .map_err(|_| DataError::parse(path, line, format!("{what} {s:?} is not a valid number")))
}

fn fan(poly: &[u32], out: &mut Vec<[u32; 3]>) {
    for k in 1..poly.len().saturating_sub(1) {
        out.push([poly[0], poly[k], poly[k + 1]]);
    }
}

/// OFF and its variants (`COFF`, `NOFF`, `CNOFF`, `STOFF`): vertex lines may carry colours or
/// normals after the coordinates and face lines colours after the indices; both are ignored.
fn parse_off(path: &Path, src: &str) -> Result<Mesh, DataError> {
    let mut lines = src
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty());
    let (line, first) = lines
        .next()
        .ok_or_else(|| DataError::layout(path, "empty file"))?;
    let mut head = first.split_whitespace();
    let tag = head.next().unwrap_or("");
    if !tag.ends_with("OFF") {
        return Err(DataError::parse(path, line, "missing OFF header"));
    }
    if tag.starts_with('4') || tag.starts_with('n') {
        return Err(DataError::parse(
            path,
            line,
            format!("{tag}: only 3D OFF files are supported"),
        ));
    }
    // Counts may follow the header on the same line.
    let rest: Vec<&str> = head.collect();
    let (cline, counts) = if rest.is_empty() {
        let (l, c) = lines
            .next()
            .ok_or_else(|| DataError::layout(path, "file ends before the counts"))?;
        (l, c.split_whitespace().collect::<Vec<_>>())
    } else {
        (line, rest)
    };
    let nv: usize = num(path, cline, counts.first().copied(), "vertex count")?;
    let nf: usize = num(path, cline, counts.get(1).copied(), "face count")?;
    // Counts come from the file: never reserve more than its lines could hold, so a bogus
    // header is a clean "file ends" error rather than an allocation failure.
    let lines_left = src.len() / 2;
    let mut vertices = Vec::with_capacity(nv.min(lines_left));
    for _ in 0..nv {
        let (l, text) = lines
            .next()
            .ok_or_else(|| DataError::layout(path, "file ends before the vertices"))?;
        let mut it = text.split_whitespace();
        vertices.push([
            num(path, l, it.next(), "coordinate")?,
            num(path, l, it.next(), "coordinate")?,
            num(path, l, it.next(), "coordinate")?,
        ]);
    }
    let mut triangles = Vec::with_capacity(nf.min(lines_left));
    for _ in 0..nf {
        let (l, text) = lines
            .next()
            .ok_or_else(|| DataError::layout(path, "file ends before the faces"))?;
        let mut it = text.split_whitespace();
        let k: usize = num(path, l, it.next(), "face size")?;
        let poly = (0..k)
            .map(|_| num::<u32>(path, l, it.next(), "vertex index"))
            .collect::<Result<Vec<_>, _>>()?;
        fan(&poly, &mut triangles);
    }
    Ok(Mesh {
        vertices,
        triangles,
    })
}

/// VRML 2.0 `IndexedFaceSet`s (as exported by KiCad's 3D libraries): every face set's
/// `Coordinate { point [...] }` and `coordIndex [...]` (faces ended by -1) join one mesh.
/// Transforms are not applied (the exporters this reader targets write none).
fn parse_wrl(path: &Path, src: &str) -> Result<Mesh, DataError> {
    let cleaned: String = src
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(',', " ")
        .replace('[', " [ ")
        .replace(']', " ] ")
        .replace('{', " { ")
        .replace('}', " } ");
    let mut toks = cleaned.split_whitespace().peekable();
    let mut mesh = Mesh {
        vertices: Vec::new(),
        triangles: Vec::new(),
    };
    let (mut points, mut index): (Option<Vec<f64>>, Option<Vec<i64>>) = (None, None);
    let mut coordinate = false;
    let flush = |mesh: &mut Mesh,
                 points: &mut Option<Vec<f64>>,
                 index: &mut Option<Vec<i64>>|
     -> Result<(), DataError> {
        if let (Some(p), Some(ix)) = (points.take(), index.take()) {
            if p.len() % 3 != 0 {
                return Err(DataError::layout(
                    path,
                    "a Coordinate point list is not a multiple of 3 values",
                ));
            }
            let base = mesh.vertices.len() as i64;
            let n = (p.len() / 3) as i64;
            mesh.vertices
                .extend(p.chunks_exact(3).map(|c| [c[0], c[1], c[2]]));
            for face in ix.split(|&i| i < 0) {
                if let Some(&bad) = face.iter().find(|&&i| i >= n) {
                    return Err(DataError::layout(
                        path,
                        format!("coordIndex {bad} but the face set has {n} points"),
                    ));
                }
                let poly: Vec<u32> = face.iter().map(|&i| (base + i) as u32).collect();
                fan(&poly, &mut mesh.triangles);
            }
        }
        Ok(())
    };
    let list = |toks: &mut std::iter::Peekable<std::str::SplitWhitespace>,
                what: &str|
     -> Result<Vec<f64>, DataError> {
        if toks.next() != Some("[") {
            return Err(DataError::layout(
                path,
                format!("{what} is not followed by a list"),
            ));
        }
        let mut v = Vec::new();
        for t in toks.by_ref() {
            if t == "]" {
                return Ok(v);
            }
            v.push(t.parse::<f64>().map_err(|_| {
                DataError::layout(path, format!("{what} value {t:?} is not a number"))
            })?);
        }
        Err(DataError::layout(
            path,
            format!("file ends inside a {what} list"),
        ))
    };
    while let Some(t) = toks.next() {
        match t {
            "IndexedFaceSet" => flush(&mut mesh, &mut points, &mut index)?,
            "Coordinate" => coordinate = true,
            "point" if coordinate => {
                points = Some(list(&mut toks, "point")?);
                coordinate = false;
            }
            "coordIndex" => {
                index = Some(
                    list(&mut toks, "coordIndex")?
                        .into_iter()
                        .map(|v| v as i64)
                        .collect(),
                )
            }
            _ => {}
        }
    }
    flush(&mut mesh, &mut points, &mut index)?;
    Ok(mesh)
}

fn parse_obj(path: &Path, src: &str) -> Result<Mesh, DataError> {
    let (mut vertices, mut triangles) = (Vec::new(), Vec::new());
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let mut it = raw.split('#').next().unwrap_or("").split_whitespace();
        match it.next() {
            Some("v") => {
                let v = [
                    num(path, line, it.next(), "x")?,
                    num(path, line, it.next(), "y")?,
                    num(path, line, it.next(), "z")?,
                ];
                if !v.iter().all(|c: &f64| c.is_finite()) {
                    return Err(DataError::parse(path, line, "non-finite vertex coordinate"));
                }
                vertices.push(v);
            }
            Some("f") => {
                let poly = it
                    .map(|t| {
                        // v, v/vt, v//vn, v/vt/vn; negative indices count from the end
                        let idx: i64 = num(path, line, t.split('/').next(), "vertex index")?;
                        let n = vertices.len() as i64;
                        let abs = if idx < 0 { n + idx } else { idx - 1 };
                        if abs < 0 || abs >= n {
                            return Err(DataError::parse(
                                path,
                                line,
                                format!("face uses vertex {idx} but {n} are defined so far"),
                            ));
                        }
                        Ok(abs as u32)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if poly.len() < 3 {
                    return Err(DataError::parse(
                        path,
                        line,
                        "a face needs at least three vertices",
                    ));
                }
                fan(&poly, &mut triangles);
            }
            _ => {}
        }
    }
    Ok(Mesh {
        vertices,
        triangles,
    })
}

fn parse_stl(path: &Path, bytes: &[u8]) -> Result<Mesh, DataError> {
    // Binary STL: 80-byte header, u32 count, 50 bytes per triangle. Some binary files start
    // with "solid" too, so trust the size arithmetic first.
    if bytes.len() >= 84 {
        let n = u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]) as usize;
        if bytes.len() == 84 + 50 * n {
            let mut mesh = Mesh {
                vertices: Vec::with_capacity(3 * n),
                triangles: Vec::with_capacity(n),
            };
            for t in 0..n {
                let base = 84 + 50 * t + 12; // skip the stored normal: we recompute it
                for k in 0..3 {
                    let v = [0, 1, 2].map(|c| {
                        let o = base + 12 * k + 4 * c;
                        f64::from(f32::from_le_bytes([
                            bytes[o],
                            bytes[o + 1],
                            bytes[o + 2],
                            bytes[o + 3],
                        ]))
                    });
                    mesh.vertices.push(v);
                }
                let b = 3 * t as u32;
                mesh.triangles.push([b, b + 1, b + 2]);
            }
            return Ok(weld(mesh));
        }
        if !bytes.starts_with(b"solid") {
            return Err(DataError::layout(
                path,
                format!(
                    "binary STL of {} bytes cannot hold {n} triangles (truncated?)",
                    bytes.len()
                ),
            ));
        }
    }
    let src = text(path, bytes)?;
    let mut mesh = Mesh {
        vertices: Vec::new(),
        triangles: Vec::new(),
    };
    let mut in_facet = 0;
    let mut ended = false;
    for (i, raw) in src.lines().enumerate() {
        let mut it = raw.split_whitespace();
        match it.next() {
            Some("vertex") => {
                mesh.vertices.push([
                    num(path, i + 1, it.next(), "x")?,
                    num(path, i + 1, it.next(), "y")?,
                    num(path, i + 1, it.next(), "z")?,
                ]);
                in_facet += 1;
            }
            Some("endfacet") => {
                if in_facet != 3 {
                    return Err(DataError::parse(
                        path,
                        i + 1,
                        format!("a facet has {in_facet} vertices, expected 3"),
                    ));
                }
                let b = mesh.vertices.len() as u32 - 3;
                mesh.triangles.push([b, b + 1, b + 2]);
                in_facet = 0;
            }
            Some("endsolid") => ended = true,
            _ => {}
        }
    }
    if in_facet != 0 || !ended {
        return Err(DataError::layout(
            path,
            "ASCII STL ends inside a facet or without `endsolid` (truncated?)",
        ));
    }
    Ok(weld(mesh))
}

/// Merges vertices with exactly equal coordinates. STL stores every triangle's corners
/// separately, so without this each surface point appears once per triangle around it (about
/// six times), each copy with only its own triangles: vertex normals and neighbourhoods would
/// be those of a shattered mesh. Equal bits only: no tolerance can move a vertex.
fn weld(mesh: Mesh) -> Mesh {
    let mut index = std::collections::HashMap::with_capacity(mesh.vertices.len() / 4);
    let mut vertices = Vec::with_capacity(mesh.vertices.len() / 4);
    let remap: Vec<u32> = mesh
        .vertices
        .iter()
        .map(|v| {
            // +0.0 and -0.0 are the same point.
            let key = v.map(|c| (c + 0.0).to_bits());
            *index.entry(key).or_insert_with(|| {
                vertices.push(*v);
                (vertices.len() - 1) as u32
            })
        })
        .collect();
    Mesh {
        vertices,
        triangles: mesh
            .triangles
            .iter()
            .map(|t| t.map(|i| remap[i as usize]))
            .collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PlyFormat {
    Ascii,
    Little,
    Big,
}

fn ply_size(ty: &str) -> Option<usize> {
    Some(match ty {
        "char" | "uchar" | "int8" | "uint8" => 1,
        "short" | "ushort" | "int16" | "uint16" => 2,
        "int" | "uint" | "int32" | "uint32" | "float" | "float32" => 4,
        "double" | "float64" => 8,
        _ => return None,
    })
}

fn ply_read(ty: &str, b: &[u8], fmt: PlyFormat) -> f64 {
    macro_rules! get {
        ($t:ty, $n:expr) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice(&b[..$n]);
            if fmt == PlyFormat::Big {
                <$t>::from_be_bytes(a) as f64
            } else {
                <$t>::from_le_bytes(a) as f64
            }
        }};
    }
    match ty {
        "char" | "int8" => get!(i8, 1),
        "uchar" | "uint8" => get!(u8, 1),
        "short" | "int16" => get!(i16, 2),
        "ushort" | "uint16" => get!(u16, 2),
        "int" | "int32" => get!(i32, 4),
        "uint" | "uint32" => get!(u32, 4),
        "float" | "float32" => get!(f32, 4),
        _ => get!(f64, 8),
    }
}

/// One PLY element: its name, count and properties (`(name, type, list count type)`).
type PlyElement = (String, usize, Vec<(String, String, Option<String>)>);

/// What a PLY file holds: its mesh, the vertex normals if it has `nx ny nz`, and every other
/// scalar vertex property by name (colours, intensity, ...).
type PlyContents = (Mesh, Option<Vec<[f64; 3]>>, crate::cloud::Extras);

/// Parses a PLY file (see [`PlyContents`]).
fn parse_ply(path: &Path, bytes: &[u8]) -> Result<PlyContents, DataError> {
    let end = bytes
        .windows(10)
        .position(|w| w == b"end_header")
        .ok_or_else(|| DataError::layout(path, "no end_header: not a PLY file"))?;
    let header = text(path, &bytes[..end])?;
    let mut body_start = end + 10;
    while body_start < bytes.len() && (bytes[body_start] == b'\r' || bytes[body_start] == b'\n') {
        body_start += 1;
        if bytes[body_start - 1] == b'\n' {
            break;
        }
    }
    let mut fmt = None;
    let mut elements: Vec<PlyElement> = Vec::new();
    for (i, l) in header.lines().enumerate() {
        let t: Vec<&str> = l.split_whitespace().collect();
        match t.as_slice() {
            ["format", f, ..] => {
                fmt = Some(match *f {
                    "ascii" => PlyFormat::Ascii,
                    "binary_little_endian" => PlyFormat::Little,
                    "binary_big_endian" => PlyFormat::Big,
                    _ => {
                        return Err(DataError::parse(
                            path,
                            i + 1,
                            format!("unknown PLY format {f}"),
                        ))
                    }
                })
            }
            ["element", name, count] => elements.push((
                name.to_string(),
                num(path, i + 1, Some(count), "element count")?,
                Vec::new(),
            )),
            ["property", "list", cnt, ty, name] => match elements.last_mut() {
                Some(e) if ply_size(cnt).is_some() && ply_size(ty).is_some() => {
                    e.2.push((name.to_string(), ty.to_string(), Some(cnt.to_string())))
                }
                _ => return Err(DataError::parse(path, i + 1, "bad list property")),
            },
            ["property", ty, name] => match elements.last_mut() {
                Some(e) if ply_size(ty).is_some() => {
                    e.2.push((name.to_string(), ty.to_string(), None))
                }
                _ => {
                    return Err(DataError::parse(
                        path,
                        i + 1,
                        format!("bad property type {ty}"),
                    ))
                }
            },
            _ => {}
        }
    }
    let fmt = fmt.ok_or_else(|| DataError::layout(path, "no format line in the PLY header"))?;
    let header_lines = header.lines().count() + 1;
    let body = &bytes[body_start..];
    let mut mesh = Mesh {
        vertices: Vec::new(),
        triangles: Vec::new(),
    };
    let mut ascii = if fmt == PlyFormat::Ascii {
        Some(
            text(path, body)?
                .lines()
                .enumerate()
                .map(|(i, l)| (i + 1 + header_lines, l))
                .filter(|(_, l)| !l.trim().is_empty()),
        )
    } else {
        None
    };
    let mut normals = Vec::new();
    // Scalar vertex properties other than the position and normal, carried by name.
    const KNOWN: [&str; 6] = ["x", "y", "z", "nx", "ny", "nz"];
    let mut extras: crate::cloud::Extras = elements
        .iter()
        .filter(|(name, _, _)| name == "vertex")
        .flat_map(|(_, _, props)| props.iter())
        .filter(|(pname, _, list)| list.is_none() && !KNOWN.contains(&pname.as_str()))
        .map(|(pname, _, _)| (pname.clone(), Vec::new()))
        .collect();
    // Every element takes at least a line (ASCII) or a byte (binary): a count beyond what the
    // body holds, or an element without properties, would loop for nothing.
    for (name, count, props) in &elements {
        if *count > 0 && props.is_empty() {
            return Err(DataError::layout(
                path,
                format!("element {name} has {count} entries but no properties"),
            ));
        }
        if *count > body.len() {
            return Err(DataError::layout(
                path,
                format!(
                    "element {name} announces {count} entries; the file holds {} bytes after the header",
                    body.len()
                ),
            ));
        }
    }
    let mut off = 0usize;
    let truncated = |off: usize| {
        DataError::layout(
            path,
            format!("binary PLY body ends at byte {off}: truncated"),
        )
    };
    for (name, count, props) in &elements {
        for _ in 0..*count {
            let mut values: Vec<Vec<f64>> = Vec::with_capacity(props.len());
            if let Some(lines) = ascii.as_mut() {
                let (line, l) = lines.next().ok_or_else(|| {
                    DataError::layout(path, format!("file ends inside element {name}"))
                })?;
                let mut it = l.split_whitespace();
                for (pname, _, list) in props {
                    if list.is_some() {
                        let k: usize = num(path, line, it.next(), "list length")?;
                        values.push(
                            (0..k)
                                .map(|_| num::<f64>(path, line, it.next(), pname))
                                .collect::<Result<_, _>>()?,
                        );
                    } else {
                        values.push(vec![num(path, line, it.next(), pname)?]);
                    }
                }
            } else {
                for (_, ty, list) in props {
                    let size = ply_size(ty).unwrap_or(4);
                    let k = match list {
                        Some(ct) => {
                            let cs = ply_size(ct).unwrap_or(1);
                            let b = body.get(off..off + cs).ok_or_else(|| truncated(off))?;
                            off += cs;
                            ply_read(ct, b, fmt) as usize
                        }
                        None => 1,
                    };
                    // k comes from the file: bound it by the bytes left (truncation is an error below).
                    let mut v = Vec::with_capacity(k.min(body.len().saturating_sub(off) / size));
                    for _ in 0..k {
                        let b = body.get(off..off + size).ok_or_else(|| truncated(off))?;
                        v.push(ply_read(ty, b, fmt));
                        off += size;
                    }
                    values.push(v);
                }
            }
            let get = |n: &str| props.iter().position(|p| p.0 == n).map(|i| &values[i]);
            if name == "vertex" {
                let (Some(x), Some(y), Some(z)) = (get("x"), get("y"), get("z")) else {
                    return Err(DataError::layout(path, "vertex element without x, y, z"));
                };
                mesh.vertices.push([x[0], y[0], z[0]]);
                if let (Some(a), Some(b), Some(c)) = (get("nx"), get("ny"), get("nz")) {
                    normals.push([a[0], b[0], c[0]]);
                }
                for (pname, v) in &mut extras {
                    if let Some(value) = get(pname).and_then(|p| p.first()) {
                        v.push(*value);
                    }
                }
            } else if name == "face" {
                let Some(idx) = get("vertex_indices").or_else(|| get("vertex_index")) else {
                    return Err(DataError::layout(
                        path,
                        "face element without vertex_indices",
                    ));
                };
                let poly: Vec<u32> = idx
                    .iter()
                    .map(|&v| if v < 0.0 { u32::MAX } else { v as u32 })
                    .collect();
                fan(&poly, &mut mesh.triangles);
            }
        }
    }
    let normals = (!normals.is_empty() && normals.len() == mesh.vertices.len()).then_some(normals);
    extras.retain(|(_, v)| v.len() == mesh.vertices.len());
    Ok((mesh, normals, extras))
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

impl Mesh {
    /// `n` points sampled uniformly by area, with face or interpolated vertex normals and
    /// optional Gaussian position noise (standard deviation `noise`). Degenerate (zero-area)
    /// triangles are never sampled; a mesh without any area is an error.
    pub fn sample(
        &self,
        n: usize,
        normals: MeshNormals,
        noise: f64,
        label: u32,
        rng: &mut ChaCha8Rng,
    ) -> Result<Shape, DataError> {
        let face_n: Vec<([f64; 3], f64)> = self
            .triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.vertices[i as usize]);
                let cr = cross(sub(b, a), sub(c, a));
                let area = 0.5 * norm(cr);
                (
                    if area > 0.0 {
                        [
                            cr[0] / (2.0 * area),
                            cr[1] / (2.0 * area),
                            cr[2] / (2.0 * area),
                        ]
                    } else {
                        [0.0; 3]
                    },
                    area,
                )
            })
            .collect();
        let mut cdf = Vec::with_capacity(face_n.len());
        let mut acc = 0.0;
        for (_, a) in &face_n {
            acc += a;
            cdf.push(acc);
        }
        if acc.is_nan() || acc <= 0.0 {
            return Err(DataError::layout("<mesh>", "the mesh has no surface area"));
        }
        let vertex_n: Vec<[f64; 3]> = if normals == MeshNormals::Interpolated {
            let mut vn = vec![[0.0; 3]; self.vertices.len()];
            for (t, (fnrm, area)) in self.triangles.iter().zip(&face_n) {
                for &v in t {
                    for k in 0..3 {
                        vn[v as usize][k] += area * fnrm[k];
                    }
                }
            }
            vn
        } else {
            Vec::new()
        };
        let (mut points, mut nrm) = (Vec::with_capacity(3 * n), Vec::with_capacity(3 * n));
        for _ in 0..n {
            let u = rng.random::<f64>() * acc;
            let f = cdf.partition_point(|&c| c < u).min(cdf.len() - 1);
            let [a, b, c] = self.triangles[f].map(|i| self.vertices[i as usize]);
            let (mut r1, mut r2) = (rng.random::<f64>(), rng.random::<f64>());
            if r1 + r2 > 1.0 {
                r1 = 1.0 - r1;
                r2 = 1.0 - r2;
            }
            let w = [1.0 - r1 - r2, r1, r2];
            for k in 0..3 {
                let e: f64 = if noise > 0.0 {
                    StandardNormal.sample(rng)
                } else {
                    0.0
                };
                points.push(w[0] * a[k] + w[1] * b[k] + w[2] * c[k] + noise * e);
            }
            let mut nv = face_n[f].0;
            if normals == MeshNormals::Interpolated {
                let t = self.triangles[f];
                let s = [0, 1, 2].map(|k| {
                    (0..3)
                        .map(|j| w[j] * vertex_n[t[j] as usize][k])
                        .sum::<f64>()
                });
                if norm(s) > 1e-12 {
                    nv = [s[0] / norm(s), s[1] / norm(s), s[2] / norm(s)];
                }
            }
            nrm.extend_from_slice(&nv);
        }
        Ok(Shape {
            d: 3,
            points,
            normals: nrm,
            label,
            parts: None,
        })
    }
}
