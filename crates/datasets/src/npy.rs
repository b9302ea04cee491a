//! NumPy `.npy` arrays: little-endian float32/float64 in C order, read (format versions 1-3)
//! and written (version 1.0, float64).

use std::path::Path;

use crate::error::DataError;

/// A float `.npy` array as f64 values and its shape, after checking that the file holds exactly
/// the data its header announces (so a hostile header cannot make the reader allocate more
/// than the file holds).
pub fn read_npy(path: &Path) -> Result<(Vec<f64>, Vec<usize>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_npy(&bytes, path)
}

/// [`read_npy`] of bytes already read (`path` names them in errors).
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<(Vec<f64>, Vec<usize>), DataError> {
    let bad = |m: String| DataError::layout(path, m);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or unreadable .npy header".into()))?;
    let width = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(bad(format!(
            "expected little-endian float32 or float64 data, header {header:?}"
        )));
    };
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| v.parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|_| bad(format!("unreadable shape in header {header:?}")))?
        .ok_or_else(|| bad(format!("no shape in header {header:?}")))?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .filter(|c| c.checked_mul(width).is_some())
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let data = &bytes[start + header_len..];
    if data.len() != count * width {
        return Err(bad(format!(
            "shape {shape:?} needs {} bytes of data, the file holds {} (truncated?)",
            count * width,
            data.len()
        )));
    }
    let values = data
        .chunks_exact(width)
        .map(|c| {
            if width == 4 {
                f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            } else {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }
        })
        .collect();
    Ok((values, shape))
}

/// A float64 C-order `.npy` file of `shape` holding `values` (format 1.0).
pub fn npy_bytes(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // The data starts at a multiple of 64 bytes; the header ends with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip() {
        let v: Vec<f64> = (0..12).map(|i| i as f64 * 0.1 - 0.3).collect();
        let bytes = npy_bytes(&[4, 3], &v);
        assert_eq!(bytes.len() % 8, 0);
        let (back, shape) = parse_npy(&bytes, Path::new("x.npy")).expect("parse");
        assert_eq!((back, shape), (v, vec![4, 3]));
        let e = parse_npy(&bytes[..bytes.len() - 3], Path::new("x.npy")).err();
        assert!(e.is_some_and(|e| e.to_string().contains("truncated")));
    }
}
