//! Direct sums of Cartesian tensor representations of O(d), written `"16x0n+8x1n+2x1p+4x2n"`.
//!
//! A term `MULxORDERPARITY` is `MUL` channels of order-`ORDER` Cartesian tensors (`d^ORDER`
//! components each) with parity `n` (normal) or `p` (pseudo: an extra factor `det U`).
//! The feature layout of a rep is fixed once here and used everywhere: terms in string order,
//! each term row-major over `(MUL, d, ..., d)`.

use std::fmt;
use std::str::FromStr;

/// The highest tensor order a rep may contain. Order `k` costs `d^k` components per channel and
/// `k d^(k+1)` flops per channel to transform; beyond 4 the sizes stop being useful for message
/// passing (in d = 6 an order-5 channel already has 7,776 components).
pub const MAX_ORDER: usize = 4;

/// Behaviour under reflections: pseudo tensors pick up an extra `det U = -1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parity {
    /// `n`: transforms as `U^(x)k`.
    Normal,
    /// `p`: transforms as `det(U) U^(x)k`.
    Pseudo,
}

impl Parity {
    fn letter(self) -> char {
        match self {
            Parity::Normal => 'n',
            Parity::Pseudo => 'p',
        }
    }
}

/// One `MULxORDERPARITY` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RepTerm {
    /// Number of channels (>= 1).
    pub mul: usize,
    /// Tensor order `k` (0 = scalar, 1 = vector, 2 = matrix, ...), at most [`MAX_ORDER`].
    pub order: usize,
    /// Normal or pseudo.
    pub parity: Parity,
}

impl RepTerm {
    /// Components of one channel in dimension `d`: `d^order`.
    pub fn channel_dim(&self, d: usize) -> usize {
        d.pow(self.order as u32)
    }

    /// Components of the whole term in dimension `d`: `mul * d^order`.
    pub fn dim(&self, d: usize) -> usize {
        self.mul * self.channel_dim(d)
    }
}

impl fmt::Display for RepTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}{}", self.mul, self.order, self.parity.letter())
    }
}

/// Why a rep string was rejected. Every variant names the offending term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepsError {
    /// The whole string was empty or blank.
    #[error("empty rep string: expected terms like \"16x0n+8x1n\"")]
    Empty,
    /// Two `+` in a row, or a leading/trailing `+`.
    #[error("empty term at position {position} in {input:?}")]
    EmptyTerm { input: String, position: usize },
    /// No `x`, or nothing before it, as in `"1n"` or `"x1n"`.
    #[error("term {term:?} has no multiplicity: write MULxORDERPARITY, e.g. \"4x1n\"")]
    MissingMultiplicity { term: String },
    /// The multiplicity is not a positive integer.
    #[error("term {term:?} has an invalid multiplicity (expected a positive integer)")]
    BadMultiplicity { term: String },
    /// Multiplicity zero.
    #[error("term {term:?} has multiplicity zero")]
    ZeroMultiplicity { term: String },
    /// The order is missing or not an integer.
    #[error("term {term:?} has an invalid order (expected an integer 0..={max})", max = MAX_ORDER)]
    BadOrder { term: String },
    /// The order exceeds [`MAX_ORDER`].
    #[error("term {term:?} has order {order}, above the supported maximum {max}", max = MAX_ORDER)]
    OrderTooHigh { term: String, order: usize },
    /// The parity letter is missing or not `n`/`p`.
    #[error("term {term:?} has an invalid parity (expected 'n' for normal or 'p' for pseudo)")]
    BadParity { term: String },
}

/// A direct sum of Cartesian tensor representations; see the module docs for the layout.
///
/// The empty rep (no terms) is allowed as a value (e.g. "no edge features") but cannot be parsed
/// from a string; build it with [`TensorReps::empty`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TensorReps {
    terms: Vec<RepTerm>,
}

impl TensorReps {
    /// The rep with no components.
    pub fn empty() -> Self {
        Self { terms: Vec::new() }
    }

    /// `n` invariant scalars, `"nx0n"` (the trivial rep; scalar messages use this).
    pub fn scalars(n: usize) -> Self {
        Self::from_terms(vec![RepTerm {
            mul: n,
            order: 0,
            parity: Parity::Normal,
        }])
    }

    /// `n` ordinary vectors, `"nx1n"`.
    pub fn vectors(n: usize) -> Self {
        Self::from_terms(vec![RepTerm {
            mul: n,
            order: 1,
            parity: Parity::Normal,
        }])
    }

    /// Builds a rep from terms, dropping terms with multiplicity zero.
    ///
    /// # Panics
    /// If a term's order exceeds [`MAX_ORDER`] (a programming error, unlike a bad string).
    pub fn from_terms(terms: Vec<RepTerm>) -> Self {
        assert!(
            terms.iter().all(|t| t.order <= MAX_ORDER),
            "tensor order above MAX_ORDER = {MAX_ORDER}"
        );
        Self {
            terms: terms.into_iter().filter(|t| t.mul > 0).collect(),
        }
    }

    /// Parses `"16x0n+8x1n+2x1p"`. Whitespace around terms is ignored.
    pub fn parse(s: &str) -> Result<Self, RepsError> {
        if s.trim().is_empty() {
            return Err(RepsError::Empty);
        }
        let terms = s
            .split('+')
            .enumerate()
            .map(|(position, raw)| parse_term(s, position, raw.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { terms })
    }

    /// The terms, in layout order.
    pub fn terms(&self) -> &[RepTerm] {
        &self.terms
    }

    /// True if there are no components at all.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Feature width in dimension `d`: `sum mul * d^order`.
    pub fn dim(&self, d: usize) -> usize {
        self.terms.iter().map(|t| t.dim(d)).sum()
    }

    /// Total number of channels, `sum mul` (independent of `d`).
    pub fn num_channels(&self) -> usize {
        self.terms.iter().map(|t| t.mul).sum()
    }

    /// Highest order present (0 for the empty rep).
    pub fn max_order(&self) -> usize {
        self.terms.iter().map(|t| t.order).max().unwrap_or(0)
    }

    /// True if every component is an invariant scalar (`0n`): then `rho(U)` is the identity.
    pub fn is_invariant(&self) -> bool {
        self.terms
            .iter()
            .all(|t| t.order == 0 && t.parity == Parity::Normal)
    }

    /// True if some term is pseudo (the action then needs `det U`).
    pub fn has_pseudo(&self) -> bool {
        self.terms.iter().any(|t| t.parity == Parity::Pseudo)
    }

    /// Start offset of every term in the feature layout for dimension `d`.
    pub fn offsets(&self, d: usize) -> Vec<usize> {
        let mut acc = 0;
        self.terms
            .iter()
            .map(|t| {
                let o = acc;
                acc += t.dim(d);
                o
            })
            .collect()
    }

    /// Merges *adjacent* terms of equal order and parity. The layout is unchanged, so features
    /// need no permutation: `"2x1n+3x1n+1x0n"` becomes `"5x1n+1x0n"`.
    pub fn simplify(&self) -> Self {
        let mut out: Vec<RepTerm> = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            match out.last_mut() {
                Some(last) if last.order == t.order && last.parity == t.parity => last.mul += t.mul,
                _ => out.push(*t),
            }
        }
        Self { terms: out }
    }

    /// Terms sorted by (order, parity), stable, and the permutation used: `perm[new] = old`
    /// term index. Follow with [`simplify`](Self::simplify) for a canonical form.
    /// Features must be permuted accordingly (see [`sort_feature_index`](Self::sort_feature_index)).
    pub fn sort(&self) -> (Self, Vec<usize>) {
        let mut perm: Vec<usize> = (0..self.terms.len()).collect();
        perm.sort_by_key(|&i| (self.terms[i].order, self.terms[i].parity));
        let terms = perm.iter().map(|&i| self.terms[i]).collect();
        (Self { terms }, perm)
    }

    /// Column index that reorders features of `self` into the layout of `self.sort().0`:
    /// `sorted_features = features.index_select(&index, 1)`.
    pub fn sort_feature_index(&self, d: usize) -> Vec<u32> {
        let (_, perm) = self.sort();
        let offsets = self.offsets(d);
        perm.iter()
            .flat_map(|&i| {
                let start = offsets[i];
                (start..start + self.terms[i].dim(d)).map(|c| c as u32)
            })
            .collect()
    }

    /// Direct sum: the terms of `self` followed by those of `other` (features concatenate).
    pub fn concat(&self, other: &TensorReps) -> Self {
        let mut terms = self.terms.clone();
        terms.extend_from_slice(&other.terms);
        Self { terms }
    }
}

fn parse_term(input: &str, position: usize, term: &str) -> Result<RepTerm, RepsError> {
    if term.is_empty() {
        return Err(RepsError::EmptyTerm {
            input: input.to_string(),
            position,
        });
    }
    let owned = || term.to_string();
    let (mul_str, rest) = term
        .split_once('x')
        .ok_or_else(|| RepsError::MissingMultiplicity { term: owned() })?;
    if mul_str.is_empty() {
        return Err(RepsError::MissingMultiplicity { term: owned() });
    }
    if !mul_str.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RepsError::BadMultiplicity { term: owned() });
    }
    let mul: usize = mul_str
        .parse()
        .map_err(|_| RepsError::BadMultiplicity { term: owned() })?;
    if mul == 0 {
        return Err(RepsError::ZeroMultiplicity { term: owned() });
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(RepsError::BadOrder { term: owned() });
    }
    let order: usize = rest[..digits]
        .parse()
        .map_err(|_| RepsError::BadOrder { term: owned() })?;
    if order > MAX_ORDER {
        return Err(RepsError::OrderTooHigh {
            term: owned(),
            order,
        });
    }
    let parity = match &rest[digits..] {
        "n" => Parity::Normal,
        "p" => Parity::Pseudo,
        _ => return Err(RepsError::BadParity { term: owned() }),
    };
    Ok(RepTerm { mul, order, parity })
}

impl FromStr for TensorReps {
    type Err = RepsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TensorReps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::ops::Add for &TensorReps {
    type Output = TensorReps;
    fn add(self, rhs: &TensorReps) -> TensorReps {
        self.concat(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let s = "16x0n+8x1n+2x1p+4x2n+1x3p";
        let r = TensorReps::parse(s).unwrap();
        assert_eq!(r.to_string(), s);
        assert_eq!(r.dim(3), 16 + 24 + 6 + 36 + 27);
        assert_eq!(r.dim(2), 16 + 16 + 4 + 16 + 8);
        assert_eq!(r.num_channels(), 31);
        assert_eq!(r.max_order(), 3);
        assert!(r.has_pseudo());
        assert_eq!(
            TensorReps::parse(" 2x1n + 3x0p ").unwrap().to_string(),
            "2x1n+3x0p"
        );
    }

    #[test]
    fn errors_name_the_bad_term() {
        use RepsError::*;
        type Check = fn(&RepsError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, Empty)),
            ("   ", |e| matches!(e, Empty)),
            ("1x0n++2x1n", |e| matches!(e, EmptyTerm { position: 1, .. })),
            ("1x0n+", |e| matches!(e, EmptyTerm { position: 1, .. })),
            (
                "1n",
                |e| matches!(e, MissingMultiplicity { term } if term == "1n"),
            ),
            ("x1n", |e| matches!(e, MissingMultiplicity { .. })),
            (
                "0x1n",
                |e| matches!(e, ZeroMultiplicity { term } if term == "0x1n"),
            ),
            ("ax1n", |e| matches!(e, BadMultiplicity { .. })),
            ("-1x1n", |e| matches!(e, BadMultiplicity { .. })),
            ("2xn", |e| matches!(e, BadOrder { .. })),
            ("2x9n", |e| matches!(e, OrderTooHigh { order: 9, .. })),
            (
                "2x1q",
                |e| matches!(e, BadParity { term } if term == "2x1q"),
            ),
            ("2x1", |e| matches!(e, BadParity { .. })),
            ("2x1np", |e| matches!(e, BadParity { .. })),
            ("99999999999999999999999x1n", |e| {
                matches!(e, BadMultiplicity { .. })
            }),
        ];
        for (s, check) in cases {
            let err = TensorReps::parse(s).unwrap_err();
            assert!(check(&err), "{s:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn simplify_sort_concat() {
        let r = TensorReps::parse("2x1n+3x1n+1x0n+1x2p+4x0n").unwrap();
        assert_eq!(r.simplify().to_string(), "5x1n+1x0n+1x2p+4x0n");
        let (sorted, perm) = r.sort();
        assert_eq!(sorted.to_string(), "1x0n+4x0n+2x1n+3x1n+1x2p");
        assert_eq!(perm, vec![2, 4, 0, 1, 3]);
        assert_eq!(sorted.simplify().to_string(), "5x0n+5x1n+1x2p");
        let idx = r.sort_feature_index(2);
        assert_eq!(idx.len(), r.dim(2));
        // first come the scalars at offsets 10 and 15..19
        assert_eq!(&idx[..5], &[10, 15, 16, 17, 18]);
        let a = TensorReps::scalars(2);
        let b = TensorReps::vectors(1);
        assert_eq!((&a + &b).to_string(), "2x0n+1x1n");
        assert!(TensorReps::empty().is_empty());
        assert_eq!(TensorReps::empty().dim(3), 0);
        assert!(TensorReps::scalars(3).is_invariant());
        assert!(!TensorReps::parse("1x0p").unwrap().is_invariant());
    }
}
