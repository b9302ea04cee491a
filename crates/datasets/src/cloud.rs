//! Point clouds in and out in the formats Open3D, PCL, CloudCompare and MeshLab exchange: PLY
//! (binary or ASCII), PCD (binary or ASCII; PCL's format), NumPy `.npy` (`N x 3` or `N x 6`)
//! and text (`x y z [nx ny nz]`). Readers for PLY and text live in [`crate::read_ply_points`]
//! and [`crate::read_points`]; this module adds PCD and NPY, and every writer.
//!
//! Positions are written exactly: PLY and PCD store them as `double`, NPY as float64, text in
//! the shortest form that reads back to the same number. Normals are `float` (PLY, PCD) with
//! the property names Open3D and MeshLab read (`nx ny nz`; PCD `normal_x normal_y normal_z`).

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use crate::error::DataError;

/// A point-cloud file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudFormat {
    /// PLY, binary little-endian.
    Ply,
    /// PLY, ASCII.
    PlyAscii,
    /// PCD v0.7, binary.
    Pcd,
    /// PCD v0.7, ASCII.
    PcdAscii,
    /// NumPy `.npy`, float64, `N x 3` or `N x 6`.
    Npy,
    /// Text, one point per line.
    Text,
}

impl CloudFormat {
    /// Every format, by its `--format` name.
    pub const ALL: [CloudFormat; 6] = [
        CloudFormat::Ply,
        CloudFormat::PlyAscii,
        CloudFormat::Pcd,
        CloudFormat::PcdAscii,
        CloudFormat::Npy,
        CloudFormat::Text,
    ];

    /// The `--format` name.
    pub fn name(self) -> &'static str {
        match self {
            CloudFormat::Ply => "ply",
            CloudFormat::PlyAscii => "ply-ascii",
            CloudFormat::Pcd => "pcd",
            CloudFormat::PcdAscii => "pcd-ascii",
            CloudFormat::Npy => "npy",
            CloudFormat::Text => "text",
        }
    }

    /// The format a file name implies: `.ply` and `.pcd` binary, `.npy`, and text for `.xyz`,
    /// `.xyzn`, `.txt`, `.pts`, `.csv`, `.asc`; `None` for anything else.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())?;
        Some(match ext.as_str() {
            "ply" => CloudFormat::Ply,
            "pcd" => CloudFormat::Pcd,
            "npy" => CloudFormat::Npy,
            "xyz" | "xyzn" | "txt" | "pts" | "csv" | "asc" => CloudFormat::Text,
            _ => return None,
        })
    }
}

impl fmt::Display for CloudFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CloudFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CloudFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = CloudFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format {s:?}; formats: {}", names.join(", "))
            })
    }
}

/// Points (`n * d`, row-major) with optional normals (same layout) and other per-point values
/// by name (colours `red green blue`, `intensity`, ...), written after the normals.
#[derive(Debug, Clone, Copy)]
pub struct CloudRef<'a> {
    /// Coordinates.
    pub points: &'a [f64],
    /// Dimension.
    pub d: usize,
    /// Unit normals, if any.
    pub normals: Option<&'a [f64]>,
    /// Other values, one per point each.
    pub extras: &'a [(String, Vec<f64>)],
}

/// Per-point values by name, in file order.
pub type Extras = Vec<(String, Vec<f64>)>;

/// Colour channels, written as PLY `uchar` when they hold integers in 0..=255.
fn is_byte_channel(name: &str, v: &[f64]) -> bool {
    matches!(name, "red" | "green" | "blue")
        && v.iter()
            .all(|x| x.fract() == 0.0 && (0.0..=255.0).contains(x))
}

/// Writes `cloud` in `format` (PLY and PCD hold 3D clouds only).
pub fn write_cloud(
    w: &mut impl Write,
    format: CloudFormat,
    cloud: CloudRef,
) -> std::io::Result<()> {
    let CloudRef {
        points,
        d,
        normals,
        extras,
    } = cloud;
    let n = points.len() / d.max(1);
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    if normals.is_some_and(|m| m.len() != points.len()) {
        return Err(bad("normals and points differ in length".into()));
    }
    if let Some((name, _)) = extras.iter().find(|(_, v)| v.len() != n) {
        return Err(bad(format!("{name} has not one value per point")));
    }
    let bytes: Vec<bool> = extras.iter().map(|(k, v)| is_byte_channel(k, v)).collect();
    let three = matches!(
        format,
        CloudFormat::Ply | CloudFormat::PlyAscii | CloudFormat::Pcd | CloudFormat::PcdAscii
    );
    if three && d != 3 {
        return Err(bad(format!(
            "{format} holds 3D points; these are {d}-dimensional"
        )));
    }
    let row = |i: usize| {
        let p = &points[i * d..(i + 1) * d];
        let m = normals.map(|m| &m[i * d..(i + 1) * d]);
        (p, m)
    };
    match format {
        CloudFormat::Ply | CloudFormat::PlyAscii => {
            let kind = if format == CloudFormat::Ply {
                "binary_little_endian"
            } else {
                "ascii"
            };
            let mut h = format!(
                "ply\nformat {kind} 1.0\ncomment written by tensor-frames\nelement vertex {n}\n\
                 property double x\nproperty double y\nproperty double z\n"
            );
            if normals.is_some() {
                h.push_str("property float nx\nproperty float ny\nproperty float nz\n");
            }
            for ((name, _), byte) in extras.iter().zip(&bytes) {
                let ty = if *byte { "uchar" } else { "float" };
                h.push_str(&format!("property {ty} {name}\n"));
            }
            h.push_str("end_header\n");
            w.write_all(h.as_bytes())?;
            for i in 0..n {
                let (p, m) = row(i);
                if format == CloudFormat::Ply {
                    w.write_all(&binary_record(p, m, extras, &bytes, i))?;
                } else {
                    let m = m.map(|m| m.iter().map(|v| *v as f32 as f64).collect());
                    text_row(w, p, m, extras, i)?;
                }
            }
        }
        CloudFormat::Pcd | CloudFormat::PcdAscii => {
            let (mut fields, mut size, mut ty, mut count) = if normals.is_some() {
                (
                    "x y z normal_x normal_y normal_z".to_string(),
                    "8 8 8 4 4 4".to_string(),
                    "F F F F F F".to_string(),
                    "1 1 1 1 1 1".to_string(),
                )
            } else {
                (
                    "x y z".into(),
                    "8 8 8".into(),
                    "F F F".into(),
                    "1 1 1".into(),
                )
            };
            for (name, _) in extras {
                fields.push_str(&format!(" {name}"));
                size.push_str(" 4");
                ty.push_str(" F");
                count.push_str(" 1");
            }
            let data = if format == CloudFormat::Pcd {
                "binary"
            } else {
                "ascii"
            };
            let h = format!(
                "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS {fields}\n\
                 SIZE {size}\nTYPE {ty}\nCOUNT {count}\nWIDTH {n}\nHEIGHT 1\n\
                 VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
            );
            w.write_all(h.as_bytes())?;
            for i in 0..n {
                let (p, m) = row(i);
                if format == CloudFormat::Pcd {
                    // PCD extras are all float fields.
                    let floats = vec![false; extras.len()];
                    w.write_all(&binary_record(p, m, extras, &floats, i))?;
                } else {
                    let m = m.map(|m| m.iter().map(|v| *v as f32 as f64).collect());
                    text_row(w, p, m, extras, i)?;
                }
            }
        }
        CloudFormat::Npy => {
            let width = if normals.is_some() { 2 * d } else { d } + extras.len();
            let mut values = Vec::with_capacity(n * width);
            for i in 0..n {
                let (p, m) = row(i);
                values.extend_from_slice(p);
                if let Some(m) = m {
                    values.extend_from_slice(m);
                }
                values.extend(extras.iter().map(|(_, v)| v[i]));
            }
            w.write_all(&crate::npy::npy_bytes(&[n, width], &values))?;
        }
        CloudFormat::Text => {
            for i in 0..n {
                let (p, m) = row(i);
                text_row(w, p, m.map(<[f64]>::to_vec), extras, i)?;
            }
        }
    }
    Ok(())
}

/// One binary record: positions as f64, normals as f32, then row `i` of each extra as a byte
/// (where `bytes` says so) or an f32; little-endian.
fn binary_record(
    p: &[f64],
    m: Option<&[f64]>,
    extras: &[(String, Vec<f64>)],
    bytes: &[bool],
    i: usize,
) -> Vec<u8> {
    let mut rec = Vec::with_capacity(8 * p.len() + 4 * p.len() + 4 * extras.len());
    p.iter()
        .for_each(|v| rec.extend_from_slice(&v.to_le_bytes()));
    if let Some(m) = m {
        m.iter()
            .for_each(|v| rec.extend_from_slice(&(*v as f32).to_le_bytes()));
    }
    for ((_, v), byte) in extras.iter().zip(bytes) {
        if *byte {
            rec.push(v[i] as u8);
        } else {
            rec.extend_from_slice(&(v[i] as f32).to_le_bytes());
        }
    }
    rec
}

/// One text row: positions in shortest round-trip form, normals with six decimals, then row
/// `i` of the extras as read.
fn text_row(
    w: &mut impl Write,
    p: &[f64],
    m: Option<Vec<f64>>,
    extras: &[(String, Vec<f64>)],
    i: usize,
) -> std::io::Result<()> {
    let mut line = String::with_capacity(96);
    for (k, v) in p.iter().enumerate() {
        if k > 0 {
            line.push(' ');
        }
        line.push_str(&v.to_string());
    }
    if let Some(m) = m {
        for v in m {
            line.push_str(&format!(" {v:.6}"));
        }
    }
    for (_, v) in extras {
        line.push(' ');
        line.push_str(&v[i].to_string());
    }
    line.push('\n');
    w.write_all(line.as_bytes())
}

/// Reads a PCD file (v0.5-0.7, `DATA ascii` or `binary`): its `x y z` and, when present,
/// `normal_x normal_y normal_z`; other fields are skipped. Points with a non-finite coordinate
/// (PCL marks the holes of organised clouds with NaN) are returned as they are; the caller
/// decides whether that is an error.
pub fn read_pcd(path: &Path) -> Result<(Vec<f64>, Option<Vec<f64>>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_pcd(&bytes, path)
}

/// [`read_pcd`] of bytes already read.
pub fn parse_pcd(bytes: &[u8], path: &Path) -> Result<(Vec<f64>, Option<Vec<f64>>), DataError> {
    let layout = |m: String| DataError::layout(path, m);
    let (mut fields, mut sizes, mut types, mut counts) = (vec![], vec![], vec![], vec![]);
    let (mut points, mut data) = (None::<usize>, None::<String>);
    let mut pos = 0;
    let mut line_no = 0;
    while pos < bytes.len() && data.is_none() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |e| pos + e);
        line_no += 1;
        let line = std::str::from_utf8(&bytes[pos..end])
            .map_err(|_| DataError::parse(path, line_no, "the header is not text".to_string()))?
            .trim();
        pos = (end + 1).min(bytes.len());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let key = it.next().unwrap_or_default().to_ascii_uppercase();
        let rest: Vec<&str> = it.collect();
        let nums = |what: &str| -> Result<Vec<usize>, DataError> {
            rest.iter()
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        DataError::parse(path, line_no, format!("{what}: {v:?} is not a count"))
                    })
                })
                .collect()
        };
        match key.as_str() {
            "VERSION" | "VIEWPOINT" => {}
            "FIELDS" | "COLUMNS" => fields = rest.iter().map(|s| s.to_string()).collect(),
            "SIZE" => sizes = nums("SIZE")?,
            "TYPE" => types = rest.iter().map(|s| s.to_ascii_uppercase()).collect(),
            "COUNT" => counts = nums("COUNT")?,
            "WIDTH" | "HEIGHT" => {}
            "POINTS" => points = nums("POINTS")?.first().copied(),
            "DATA" => data = rest.first().map(|s| s.to_ascii_lowercase()),
            other => {
                return Err(DataError::parse(
                    path,
                    line_no,
                    format!("unknown PCD header entry {other:?}"),
                ))
            }
        }
    }
    let Some(data) = data else {
        return Err(layout("not a PCD file: no DATA line in the header".into()));
    };
    let k = fields.len();
    if k == 0 {
        return Err(layout("the header names no FIELDS".into()));
    }
    if counts.is_empty() {
        counts = vec![1; k];
    }
    if sizes.len() != k || types.len() != k || counts.len() != k {
        return Err(layout(format!(
            "FIELDS, SIZE, TYPE and COUNT differ in length ({k}, {}, {}, {})",
            sizes.len(),
            types.len(),
            counts.len()
        )));
    }
    let find = |name: &str| fields.iter().position(|f| f == name);
    let (Some(x), Some(y), Some(z)) = (find("x"), find("y"), find("z")) else {
        return Err(layout(format!(
            "no x, y and z fields (fields: {})",
            fields.join(" ")
        )));
    };
    let normal = match (find("normal_x"), find("normal_y"), find("normal_z")) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    let wanted: Vec<usize> = [x, y, z]
        .into_iter()
        .chain(normal.into_iter().flatten())
        .collect();
    for &f in &wanted {
        if counts[f] != 1 || types[f] != "F" || !matches!(sizes[f], 4 | 8) {
            return Err(layout(format!(
                "field {} must be one float of 4 or 8 bytes (TYPE F, SIZE 4 or 8, COUNT 1)",
                fields[f]
            )));
        }
    }
    let n_points = points.ok_or_else(|| layout("the header has no POINTS count".into()))?;
    let body = &bytes[pos..];
    let mut values = Vec::new();
    match data.as_str() {
        "ascii" => {
            let columns: usize = counts.iter().sum();
            // Column of each field's first value.
            let starts: Vec<usize> = counts
                .iter()
                .scan(0, |s, &c| {
                    let at = *s;
                    *s += c;
                    Some(at)
                })
                .collect();
            let text = std::str::from_utf8(body)
                .map_err(|_| layout("DATA ascii holds bytes that are not text".into()))?;
            for (i, line) in text.lines().enumerate() {
                let t = line.trim();
                if t.is_empty() {
                    continue;
                }
                let cols: Vec<&str> = t.split_whitespace().collect();
                let lineno = line_no + i + 1;
                if cols.len() != columns {
                    return Err(DataError::parse(
                        path,
                        lineno,
                        format!("expected {columns} values, found {}", cols.len()),
                    ));
                }
                for &f in &wanted {
                    let v = cols[starts[f]];
                    values.push(v.parse::<f64>().map_err(|_| {
                        DataError::parse(path, lineno, format!("{v:?} is not a number"))
                    })?);
                }
            }
        }
        "binary" => {
            let record: usize = sizes.iter().zip(&counts).map(|(s, c)| s * c).sum();
            let offsets: Vec<usize> = sizes
                .iter()
                .zip(&counts)
                .scan(0, |s, (a, c)| {
                    let at = *s;
                    *s += a * c;
                    Some(at)
                })
                .collect();
            let need = n_points.checked_mul(record).filter(|&b| b <= body.len());
            let Some(need) = need else {
                return Err(layout(format!(
                    "POINTS {n_points} of {record} bytes need more data than the file holds ({} bytes)",
                    body.len()
                )));
            };
            values.reserve(n_points * wanted.len());
            for rec in body[..need].chunks_exact(record.max(1)) {
                for &f in &wanted {
                    let b = &rec[offsets[f]..offsets[f] + sizes[f]];
                    values.push(if sizes[f] == 4 {
                        f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    } else {
                        f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    });
                }
            }
        }
        "binary_compressed" => {
            return Err(layout(
                "DATA binary_compressed is not supported; save the cloud as binary or ascii \
                 (pcl_convert_pcd_ascii_binary <in> <out> 1)"
                    .into(),
            ))
        }
        other => return Err(layout(format!("unknown DATA kind {other:?}"))),
    }
    let w = wanted.len();
    let n = values.len() / w;
    if n != n_points {
        return Err(layout(format!(
            "the header says POINTS {n_points}, the data holds {n}"
        )));
    }
    let mut p = Vec::with_capacity(n * 3);
    let mut m = normal.map(|_| Vec::with_capacity(n * 3));
    for row in values.chunks_exact(w) {
        p.extend_from_slice(&row[..3]);
        if let Some(m) = m.as_mut() {
            m.extend_from_slice(&row[3..6]);
        }
    }
    Ok((p, m))
}

/// Reads a lidar cloud, LAS or LAZ (compressed), through the `las` crate: positions (scale and
/// offset applied, as f64), and per point `intensity` and, for point formats with colour,
/// `red green blue` (16-bit in LAS).
pub fn read_las(path: &Path) -> Result<(Vec<f64>, Extras), DataError> {
    let bad = |e: las::Error| DataError::layout(path, e.to_string());
    let mut reader = las::Reader::from_path(path).map_err(bad)?;
    let colour = reader.header().point_format().has_color;
    let (mut p, mut intensity) = (Vec::new(), Vec::new());
    let mut rgb: [Vec<f64>; 3] = Default::default();
    for point in reader.points() {
        let point = point.map_err(bad)?;
        p.extend_from_slice(&[point.x, point.y, point.z]);
        intensity.push(f64::from(point.intensity));
        if let (true, Some(c)) = (colour, point.color) {
            rgb[0].push(f64::from(c.red));
            rgb[1].push(f64::from(c.green));
            rgb[2].push(f64::from(c.blue));
        }
    }
    if p.is_empty() {
        return Err(DataError::layout(path, "no points"));
    }
    let mut extras = vec![("intensity".to_string(), intensity)];
    if rgb[0].len() * 3 == p.len() {
        for (name, v) in ["red", "green", "blue"].into_iter().zip(rgb) {
            extras.push((name.to_string(), v));
        }
    }
    Ok((p, extras))
}

/// Reads an `N x 3` (points) or `N x 6` (points and normals) float `.npy` array.
pub fn read_npy_points(path: &Path) -> Result<(Vec<f64>, Option<Vec<f64>>), DataError> {
    let (values, shape) = crate::npy::read_npy(path)?;
    match shape.as_slice() {
        [_, 3] => Ok((values, None)),
        [n, 6] => {
            let (mut p, mut m) = (Vec::with_capacity(n * 3), Vec::with_capacity(n * 3));
            for row in values.chunks_exact(6) {
                p.extend_from_slice(&row[..3]);
                m.extend_from_slice(&row[3..]);
            }
            Ok((p, Some(m)))
        }
        s => Err(DataError::layout(
            path,
            format!("expected an N x 3 or N x 6 array, got shape {s:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud() -> (Vec<f64>, Vec<f64>) {
        // Positions that need every bit (1e-7 scale, 1e6 offsets) and unit normals.
        let p = vec![
            1.0e-7,
            2.5e-7,
            -3.0e-7,
            1.0e6 + 0.125,
            -7.0,
            0.1,
            0.3,
            1.0 / 3.0,
            2.0,
        ];
        let m = vec![0.0, 0.0, 1.0, 0.6, 0.8, 0.0, -1.0, 0.0, 0.0];
        (p, m)
    }

    #[test]
    fn every_writer_reads_back() {
        let (p, m) = cloud();
        let dir = std::env::temp_dir().join(format!("tf-cloud-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for format in CloudFormat::ALL {
            for normals in [None, Some(m.as_slice())] {
                let mut bytes = Vec::new();
                write_cloud(
                    &mut bytes,
                    format,
                    CloudRef {
                        points: &p,
                        d: 3,
                        normals,
                        extras: &[],
                    },
                )
                .expect("write");
                let ext = match format {
                    CloudFormat::Ply | CloudFormat::PlyAscii => "ply",
                    CloudFormat::Pcd | CloudFormat::PcdAscii => "pcd",
                    CloudFormat::Npy => "npy",
                    CloudFormat::Text => "xyz",
                };
                let path = dir.join(format!("c.{ext}"));
                std::fs::write(&path, &bytes).expect("file");
                let (q, n) = match format {
                    CloudFormat::Ply | CloudFormat::PlyAscii => {
                        crate::read_ply_points(&path).expect("ply")
                    }
                    CloudFormat::Pcd | CloudFormat::PcdAscii => read_pcd(&path).expect("pcd"),
                    CloudFormat::Npy => read_npy_points(&path).expect("npy"),
                    CloudFormat::Text => crate::read_points(&path).expect("text"),
                };
                assert_eq!(q, p, "{format}: positions must round-trip exactly");
                assert_eq!(n.is_some(), normals.is_some(), "{format}");
                if let Some(n) = n {
                    let err = n
                        .iter()
                        .zip(&m)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    assert!(err < 1e-6, "{format}: normals off by {err}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ply_and_pcd_headers_are_what_open3d_and_pcl_read() {
        let (p, m) = cloud();
        let mut ply = Vec::new();
        write_cloud(
            &mut ply,
            CloudFormat::Ply,
            CloudRef {
                points: &p,
                d: 3,
                normals: Some(&m),
                extras: &[],
            },
        )
        .expect("ply");
        let head = "ply\nformat binary_little_endian 1.0\ncomment written by tensor-frames\n\
                    element vertex 3\nproperty double x\nproperty double y\nproperty double z\n\
                    property float nx\nproperty float ny\nproperty float nz\nend_header\n";
        assert_eq!(&ply[..head.len()], head.as_bytes());
        // 3 records of 3 doubles and 3 floats.
        assert_eq!(ply.len(), head.len() + 3 * 36);
        assert_eq!(&ply[head.len()..head.len() + 8], &1.0e-7f64.to_le_bytes());
        let mut pcd = Vec::new();
        write_cloud(
            &mut pcd,
            CloudFormat::PcdAscii,
            CloudRef {
                points: &p,
                d: 3,
                normals: None,
                extras: &[],
            },
        )
        .expect("pcd");
        let text = String::from_utf8(pcd).expect("utf8");
        assert!(text.starts_with("# .PCD v0.7"));
        assert!(text
            .contains("\nFIELDS x y z\nSIZE 8 8 8\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\n"));
        assert!(text.contains("\nPOINTS 3\nDATA ascii\n0.0000001 0.00000025 -0.0000003\n"));
    }

    #[test]
    fn las_and_laz_clouds_read_back() {
        let dir = std::env::temp_dir().join(format!("tf-las-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for ext in ["las", "laz"] {
            let path = dir.join(format!("c.{ext}"));
            let mut b = las::Builder::from((1, 4));
            b.point_format = las::point::Format::new(2).expect("format 2 has colour");
            b.point_format.is_compressed = ext == "laz";
            b.transforms = las::Vector {
                x: las::Transform {
                    scale: 0.001,
                    offset: 500_000.0,
                },
                y: las::Transform {
                    scale: 0.001,
                    offset: 4_000_000.0,
                },
                z: las::Transform {
                    scale: 0.001,
                    offset: 0.0,
                },
            };
            let header = b.into_header().expect("header");
            let mut w = las::Writer::from_path(&path, header).expect("writer");
            for i in 0..3 {
                let mut p = las::Point {
                    x: 500_000.0 + i as f64,
                    y: 4_000_000.5,
                    z: 12.25,
                    intensity: 100 + i as u16,
                    ..Default::default()
                };
                p.color = Some(las::Color::new(1000, 2000, 3000));
                w.write_point(p).expect("point");
            }
            w.close().expect("close");
            drop(w);
            let (p, extras) = read_las(&path).expect("read");
            assert_eq!(&p[..3], &[500_000.0, 4_000_000.5, 12.25], "{ext}");
            assert_eq!(
                extras[0],
                ("intensity".to_string(), vec![100.0, 101.0, 102.0])
            );
            assert_eq!(extras[1].0, "red");
            std::fs::write(&path, b"LASF garbage").expect("garbage");
            let e = read_las(&path)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(&format!("c.{ext}")), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn colours_and_intensity_are_carried_through() {
        let (p, m) = cloud();
        let extras = vec![
            ("red".to_string(), vec![255.0, 0.0, 7.0]),
            ("green".to_string(), vec![1.0, 2.0, 3.0]),
            ("blue".to_string(), vec![0.0, 0.0, 0.0]),
            ("intensity".to_string(), vec![0.5, 1.5, 2.5]),
        ];
        let cloud = CloudRef {
            points: &p,
            d: 3,
            normals: Some(&m),
            extras: &extras,
        };
        let mut ply = Vec::new();
        write_cloud(&mut ply, CloudFormat::Ply, cloud).expect("ply");
        let text = String::from_utf8_lossy(&ply).to_string();
        assert!(text.contains("property uchar red\nproperty uchar green\nproperty uchar blue\nproperty float intensity\nend_header"));
        // 3 doubles, 3 floats, 3 bytes, 1 float per point.
        let head = text.find("end_header\n").expect("header") + "end_header\n".len();
        assert_eq!(ply.len() - head, 3 * (24 + 12 + 3 + 4));
        let mut txt = Vec::new();
        write_cloud(&mut txt, CloudFormat::Text, cloud).expect("text");
        let first = String::from_utf8(txt).expect("utf8");
        assert!(
            first
                .lines()
                .next()
                .is_some_and(|l| l.ends_with(" 255 1 0 0.5")),
            "{first}"
        );
    }

    #[test]
    fn pcd_files_of_pcl_read_and_bad_ones_are_named() {
        // PCL's usual XYZRGB ascii cloud with an organised-cloud hole (NaN).
        let text = "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\n\
                    COUNT 1 1 1 1\nWIDTH 2\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\n\
                    DATA ascii\n0.5 1 2 4278190080\nnan nan nan 0\n";
        let (p, n) = parse_pcd(text.as_bytes(), Path::new("a.pcd")).expect("pcd");
        assert_eq!(&p[..3], &[0.5, 1.0, 2.0]);
        assert!(p[3].is_nan() && n.is_none());
        let cases: [(&str, &str); 5] = [
            (
                "VERSION 0.7\nFIELDS x y\nSIZE 4 4\nTYPE F F\nPOINTS 0\nDATA ascii\n",
                "no x, y and z",
            ),
            (
                "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1\nDATA binary_compressed\n",
                "binary_compressed",
            ),
            (
                "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1000000000\nDATA binary\n\0\0\0\0",
                "more data",
            ),
            (
                "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 2\nDATA ascii\n1 2 3\n",
                "POINTS 2",
            ),
            ("hello\n", "unknown PCD header"),
        ];
        for (text, want) in cases {
            let e = parse_pcd(text.as_bytes(), Path::new("b.pcd"))
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains(want) && e.contains("b.pcd")),
                "{e:?}"
            );
        }
    }
}
