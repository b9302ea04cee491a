//! Point sets with normals as text: one point per line, `x y z nx ny nz` (`.xyz`, `.pwn`,
//! ModelNet40's resampled `.txt` with commas), optionally followed by an integer part label
//! (ShapeNet part segmentation). Streaming, so memory grows with the points only.
//!
//! Numbers may be separated by commas and/or whitespace; blank lines, a UTF-8 byte-order mark
//! and `#` comments (whole lines or after the values) are skipped. A line longer than
//! [`MAX_LINE_BYTES`] is an error (a file without newlines is not buffered without limit). Every bad line is an error naming `file:line`: a wrong column count, a value
//! that is not a number, NaN or infinite coordinates, a zero normal, a part label that is not a
//! non-negative integer. Normals are rescaled to unit length.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::DataError;
use crate::shape::Shape;

/// Which columns a point-set file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// `x y z nx ny nz`.
    Normals,
    /// `x y z nx ny nz part`.
    NormalsAndPart,
}

/// The longest line a point-set file may have (a point with normals and a label is well under
/// 200 bytes).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The lines of `file`, each at most [`MAX_LINE_BYTES`] long (else an error naming the line),
/// read through one reused buffer.
fn bounded_lines(
    file: std::fs::File,
    path: &Path,
) -> impl Iterator<Item = Result<String, DataError>> + '_ {
    let mut reader = BufReader::new(file);
    let mut lineno = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        lineno += 1;
        let mut buf = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut buf) {
            Err(e) => {
                done = true;
                Some(Err(DataError::io(path, e)))
            }
            Ok(0) => None,
            Ok(_) => {
                if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
                    done = true;
                    return Some(Err(DataError::parse(
                        path,
                        lineno,
                        format!("line longer than {MAX_LINE_BYTES} bytes (not a point-set file?)"),
                    )));
                }
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                Some(String::from_utf8(buf).map_err(|_| {
                    done = true;
                    DataError::parse(path, lineno, "the line is not UTF-8 text")
                }))
            }
        }
    })
}

/// Normals shorter than this are rejected as "zero".
const MIN_NORMAL: f64 = 1e-8;

/// Reads a point set; `label` is stored as the shape's class.
pub fn read_point_set(path: &Path, columns: Columns, label: u32) -> Result<Shape, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let want = match columns {
        Columns::Normals => 6,
        Columns::NormalsAndPart => 7,
    };
    let (mut points, mut normals, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in bounded_lines(file, path).enumerate() {
        let lineno = i + 1;
        let line = line?;
        // A UTF-8 byte-order mark (Windows editors) and `#` comments, also after values.
        let line = if lineno == 1 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        let t = line.split('#').next().unwrap_or_default().trim();
        if t.is_empty() {
            continue;
        }
        let fields: Vec<&str> = t
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        if fields.len() != want {
            return Err(DataError::parse(
                path,
                lineno,
                format!("expected {want} values, found {}", fields.len()),
            ));
        }
        let mut v = [0.0f64; 6];
        for (k, f) in fields.iter().take(6).enumerate() {
            v[k] = f.parse::<f64>().map_err(|_| {
                DataError::parse(
                    path,
                    lineno,
                    format!("value {} ({f:?}) is not a number", k + 1),
                )
            })?;
            if !v[k].is_finite() {
                return Err(DataError::parse(
                    path,
                    lineno,
                    format!("value {} is not finite ({f})", k + 1),
                ));
            }
        }
        let len = (v[3] * v[3] + v[4] * v[4] + v[5] * v[5]).sqrt();
        if len < MIN_NORMAL {
            return Err(DataError::parse(path, lineno, "the normal is zero"));
        }
        points.extend_from_slice(&v[..3]);
        normals.extend_from_slice(&[v[3] / len, v[4] / len, v[5] / len]);
        if columns == Columns::NormalsAndPart {
            let part = fields[6].parse::<u32>().map_err(|_| {
                DataError::parse(
                    path,
                    lineno,
                    format!("part label {:?} is not a non-negative integer", fields[6]),
                )
            })?;
            parts.push(part);
        }
    }
    if points.is_empty() {
        return Err(DataError::layout(path, "no points in the file"));
    }
    Ok(Shape {
        d: 3,
        points,
        normals,
        label,
        parts: (columns == Columns::NormalsAndPart).then_some(parts),
    })
}

/// Points of a text file with 3 (`x y z`), 6 (`+ nx ny nz`) or 7 (`+ part`) columns per line,
/// for inference on a user's own data: returns `(points, normals if the file has them)`.
/// Every line must have the same number of columns; bad lines are errors naming `file:line`.
pub fn read_points(path: &Path) -> Result<(Vec<f64>, Option<Vec<f64>>), DataError> {
    read_points_with(path, false)
}

/// [`read_points`], keeping rows whose values are not finite (`nan`, `inf`) when
/// `keep_non_finite` is set, for a caller that drops them and says how many.
pub fn read_points_with(
    path: &Path,
    keep_non_finite: bool,
) -> Result<(Vec<f64>, Option<Vec<f64>>), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let (mut points, mut normals) = (Vec::new(), Vec::new());
    let mut width = None;
    for (i, line) in bounded_lines(file, path).enumerate() {
        let lineno = i + 1;
        let line = line?;
        // A UTF-8 byte-order mark (Windows editors) and `#` comments, also after values.
        let line = if lineno == 1 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        let t = line.split('#').next().unwrap_or_default().trim();
        if t.is_empty() {
            continue;
        }
        let fields: Vec<&str> = t
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        if ![3, 6, 7].contains(&fields.len()) {
            return Err(DataError::parse(
                path,
                lineno,
                format!("expected 3, 6 or 7 values, found {}", fields.len()),
            ));
        }
        if *width.get_or_insert(fields.len()) != fields.len() {
            return Err(DataError::parse(
                path,
                lineno,
                format!(
                    "{} values, but earlier lines have {}",
                    fields.len(),
                    width.unwrap_or(0)
                ),
            ));
        }
        for (k, f) in fields.iter().take(6).enumerate() {
            let v = f.parse::<f64>().map_err(|_| {
                DataError::parse(
                    path,
                    lineno,
                    format!("value {} ({f:?}) is not a number", k + 1),
                )
            })?;
            if !v.is_finite() && !keep_non_finite {
                return Err(DataError::parse(
                    path,
                    lineno,
                    format!("value {} is not finite", k + 1),
                ));
            }
            if k < 3 {
                points.push(v);
            } else {
                normals.push(v);
            }
        }
    }
    if points.is_empty() {
        return Err(DataError::layout(path, "no points"));
    }
    let normals = (!normals.is_empty()).then_some(normals);
    Ok((points, normals))
}
