//! Published test MSEs on the same protocol (5 charged particles, 3,000 training systems,
//! frame 30 -> 40), as reported by the papers named; not rerun here. We could not re-check the
//! figures against the papers offline: each carries its source so a reader can.

/// One published result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// Model name.
    pub model: &'static str,
    /// Reported test MSE.
    pub test_mse: f64,
    /// Where it is reported.
    pub source: &'static str,
}

const EGNN_PAPER: &str =
    "Satorras, Hoogeboom & Welling, E(n) Equivariant Graph Neural Networks, ICML 2021, Table 2";

/// The published rows, best last.
pub const PUBLISHED: [Published; 10] = [
    Published { model: "Linear", test_mse: 0.0819, source: EGNN_PAPER },
    Published { model: "SE(3)-Transformer", test_mse: 0.0244, source: EGNN_PAPER },
    Published { model: "Tensor Field Network", test_mse: 0.0155, source: EGNN_PAPER },
    Published { model: "GNN", test_mse: 0.0107, source: EGNN_PAPER },
    Published { model: "Radial Field", test_mse: 0.0104, source: EGNN_PAPER },
    Published { model: "EGNN", test_mse: 0.0071, source: EGNN_PAPER },
    Published {
        model: "ClofNet (local frames, scalar messages)",
        test_mse: 0.0065,
        source: "Du et al., SE(3) Equivariant Graph Neural Networks with Complete Local Frames, ICML 2022",
    },
    Published {
        model: "FA-GNN (frame averaging)",
        test_mse: 0.0057,
        source: "Puny et al., Frame Averaging for Invariant and Equivariant Network Design, ICLR 2022",
    },
    Published {
        model: "SEGNN",
        test_mse: 0.0043,
        source: "Brandstetter et al., Geometric and Physical Quantities Improve E(3) Equivariant Message Passing, ICLR 2022",
    },
    Published {
        model: "CGENN",
        test_mse: 0.0039,
        source: "Ruhe, Brandstetter & Forré, Clifford Group Equivariant Neural Networks, NeurIPS 2023",
    },
];
