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

/// A line's values: without a UTF-8 byte-order mark (Windows editors; first line only) and
/// without a `#` comment, also one after the values; trimmed.
fn content(line: &str, lineno: usize) -> &str {
    let line = if lineno == 1 {
        line.trim_start_matches('\u{feff}')
    } else {
        line
    };
    line.split('#').next().unwrap_or_default().trim()
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
        let t = content(&line, lineno);
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
    let c = read_text_cloud(path, None, keep_non_finite)?;
    Ok((c.points, c.normals))
}

/// What the columns of a text point cloud hold, as `--columns` spells it: `xyz` followed by
/// any of `n` (normal, 3 columns), `rgb` (colour, 3), `i` (intensity, 1), `l` (label, 1), in
/// file order, e.g. `xyz`, `xyzn`, `xyzrgb`, `xyzi`, `xyznrgb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextColumns(Vec<Column>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Normal,
    Rgb,
    Intensity,
    Label,
}

impl std::str::FromStr for TextColumns {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "unknown columns {s:?}: xyz followed by n (normal), rgb (colour), i (intensity) \
                 or l (label), e.g. xyz, xyzn, xyzrgb, xyzi"
            )
        };
        let mut rest = s.strip_prefix("xyz").ok_or_else(bad)?;
        let mut cols = Vec::new();
        while !rest.is_empty() {
            let (c, tail) = if let Some(t) = rest.strip_prefix("rgb") {
                (Column::Rgb, t)
            } else if let Some(t) = rest.strip_prefix('n') {
                (Column::Normal, t)
            } else if let Some(t) = rest.strip_prefix('i') {
                (Column::Intensity, t)
            } else if let Some(t) = rest.strip_prefix('l') {
                (Column::Label, t)
            } else {
                return Err(bad());
            };
            if cols.contains(&c) {
                return Err(bad());
            }
            cols.push(c);
            rest = tail;
        }
        Ok(Self(cols))
    }
}

impl TextColumns {
    fn width(&self) -> usize {
        3 + self
            .0
            .iter()
            .map(|c| match c {
                Column::Normal | Column::Rgb => 3,
                Column::Intensity | Column::Label => 1,
            })
            .sum::<usize>()
    }
}

/// A text point cloud: points, normals if the columns have them, and the other per-point
/// values by name (`red`, `green`, `blue`, `intensity`, `label`), to be carried to the output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextCloud {
    /// Positions, `n * 3`.
    pub points: Vec<f64>,
    /// Normals, if any.
    pub normals: Option<Vec<f64>>,
    /// Other per-point values, in file order.
    pub extras: Vec<(String, Vec<f64>)>,
}

/// Reads a text point cloud. With `columns`, every row must have exactly those columns; without,
/// rows of 3 (`xyz`), 6 (`xyz` + normal) or 7 (+ part label) values are accepted, and six
/// columns whose last three are colours (non-negative integers above 1) are an error that asks
/// for `--columns xyzrgb` rather than normals. A first line that is not numbers (a CSV header)
/// is skipped. Values may be separated by commas and/or whitespace.
pub fn read_text_cloud(
    path: &Path,
    columns: Option<&TextColumns>,
    keep_non_finite: bool,
) -> Result<TextCloud, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut rows: Vec<f64> = Vec::new();
    let mut width = columns.map(TextColumns::width);
    let mut data_lines = 0usize;
    let mut first_content = true;
    for (i, line) in bounded_lines(file, path).enumerate() {
        let lineno = i + 1;
        let line = line?;
        let t = content(&line, lineno);
        if t.is_empty() {
            continue;
        }
        let fields: Vec<&str> = t
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        let header = first_content
            && fields.iter().any(|f| {
                f.parse::<f64>().is_err()
                    && f.chars().any(|c| c.is_alphabetic())
                    && !f.eq_ignore_ascii_case("nan")
                    && !f.to_ascii_lowercase().contains("inf")
            });
        first_content = false;
        if header {
            continue;
        }
        let w = *width.get_or_insert(fields.len());
        if columns.is_none() && ![3, 6, 7].contains(&w) {
            return Err(DataError::parse(
                path,
                lineno,
                format!(
                    "expected 3, 6 or 7 values, found {w} (say what the columns are with \
                     --columns, e.g. xyzi for 4)"
                ),
            ));
        }
        if fields.len() != w {
            return Err(DataError::parse(
                path,
                lineno,
                format!(
                    "{} values, but {}",
                    fields.len(),
                    if columns.is_some() {
                        format!("the columns name {w}")
                    } else {
                        format!("earlier lines have {w}")
                    }
                ),
            ));
        }
        for (k, f) in fields.iter().enumerate() {
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
            rows.push(v);
        }
        data_lines += 1;
    }
    if data_lines == 0 {
        return Err(DataError::layout(path, "no points"));
    }
    let w = width.unwrap_or(3);
    let auto;
    let columns = match columns {
        Some(c) => c,
        None => {
            auto = match w {
                3 => TextColumns(vec![]),
                6 => TextColumns(vec![Column::Normal]),
                _ => TextColumns(vec![Column::Normal, Column::Label]),
            };
            // Colours are non-negative integers, mostly above 1; normals are neither.
            if w >= 6 {
                let colourish = rows
                    .chunks(w)
                    .all(|r| r[3..6].iter().all(|v| *v >= 0.0 && v.fract() == 0.0))
                    && rows.chunks(w).any(|r| r[3..6].iter().any(|v| *v > 1.0));
                if colourish {
                    return Err(DataError::layout(
                        path,
                        "columns 4-6 look like colours, not normals; say --columns xyzrgb (or \
                         xyzn if they are normals)",
                    ));
                }
            }
            &auto
        }
    };
    let mut cloud = TextCloud::default();
    let mut at = 3;
    let col = |c: usize| rows.chunks(w).map(move |r| r[c]);
    cloud.points = rows.chunks(w).flat_map(|r| r[..3].to_vec()).collect();
    for c in &columns.0 {
        match c {
            Column::Normal => {
                cloud.normals = Some(
                    rows.chunks(w)
                        .flat_map(|r| r[at..at + 3].to_vec())
                        .collect(),
                );
                at += 3;
            }
            Column::Rgb => {
                for (k, name) in ["red", "green", "blue"].into_iter().enumerate() {
                    cloud.extras.push((name.to_string(), col(at + k).collect()));
                }
                at += 3;
            }
            Column::Intensity => {
                cloud
                    .extras
                    .push(("intensity".to_string(), col(at).collect()));
                at += 1;
            }
            Column::Label => {
                cloud.extras.push(("label".to_string(), col(at).collect()));
                at += 1;
            }
        }
    }
    Ok(cloud)
}
