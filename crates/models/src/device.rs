//! Where a model runs: `cpu` (the default), `cuda[:N]` or `metal[:N]`, as configurations and
//! command lines write it.
//!
//! CUDA and Metal need the workspace built with the `cuda` or `metal` feature; without it,
//! [`DeviceChoice::device`] says so instead of failing later. Every op of the workspace runs
//! anywhere: on the CPU the hand-written kernels, elsewhere the portable compositions of
//! candle ops ([`tf_group::portable`]).

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Result};
use serde::{Deserialize, Serialize};

/// A device by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The host (the default).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
    /// A Metal GPU by ordinal.
    Metal(usize),
}

/// A device name that is not `cpu`, `cuda[:N]` or `metal[:N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDevice(pub String);

impl fmt::Display for UnknownDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown device {:?}: expected cpu, cuda, cuda:N, metal or metal:N",
            self.0
        )
    }
}

impl std::error::Error for UnknownDevice {}

impl FromStr for DeviceChoice {
    type Err = UnknownDevice;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || UnknownDevice(s.to_string());
        let (kind, ordinal) = match s.split_once(':') {
            Some((k, n)) => (k, n.parse::<usize>().map_err(|_| bad())?),
            None => (s, 0),
        };
        match kind {
            "cpu" if !s.contains(':') => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(ordinal)),
            "metal" => Ok(Self::Metal(ordinal)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = UnknownDevice;
    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl DeviceChoice {
    /// Whether this is the host.
    pub fn is_cpu(&self) -> bool {
        *self == Self::Cpu
    }

    /// Opens the device (an error names the missing `cuda` / `metal` build feature or the
    /// driver's complaint).
    pub fn device(self) -> Result<Device> {
        let opened = match self {
            Self::Cpu => return Ok(Device::Cpu),
            Self::Cuda(n) => Device::new_cuda(n),
            Self::Metal(n) => Device::new_metal(n),
        };
        opened.map_err(|e| {
            candle_core::Error::Msg(format!(
                "cannot open {self}: {e} (GPU devices need a build with `--features cuda` or `--features metal`)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_print_and_open() {
        for (s, d) in [
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:1", DeviceChoice::Cuda(1)),
            ("metal:0", DeviceChoice::Metal(0)),
        ] {
            assert_eq!(s.parse::<DeviceChoice>(), Ok(d));
            assert_eq!(d.to_string().parse::<DeviceChoice>(), Ok(d));
        }
        for bad in ["gpu", "cuda:x", "cpu:0", "", "cuda:-1"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
        assert!(DeviceChoice::Cpu.device().is_ok_and(|d| d.is_cpu()));
        #[cfg(not(feature = "cuda"))]
        {
            let e = DeviceChoice::Cuda(0).device().err().map(|e| e.to_string());
            assert!(e.is_some_and(|e| e.contains("--features cuda")));
        }
        let json = serde_json::to_string(&DeviceChoice::Cuda(2)).unwrap_or_default();
        assert_eq!(json, "\"cuda:2\"");
        assert!(serde_json::from_str::<DeviceChoice>("\"tpu\"").is_err());
    }
}
