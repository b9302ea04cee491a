//! Which path an op takes: the hand-written CPU kernels, or the portable composition of candle
//! ops that every device runs (CUDA, Metal) with candle's own autograd.
//!
//! Every custom op of the workspace dispatches through [`use_kernels`]: tensors on the CPU take
//! the kernel (the fast path), tensors anywhere else the portable path. [`portable`] forces the
//! portable path on the CPU for the duration of a closure, on the calling thread, so tests can
//! compare the two paths (forward and gradients) and run the equivariance property tests with
//! the path a GPU would take.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use tf_group::portable::{portable, use_kernels};
//!
//! let x = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
//! assert!(use_kernels(&x));
//! assert!(!portable(|| use_kernels(&x)));
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Tensor;

thread_local! {
    static FORCED: Cell<bool> = const { Cell::new(false) };
}

static PORTABLE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Whether an op on `t` runs its CPU kernel: `t` is on the CPU and the portable path is not
/// forced on this thread. A `false` answer is counted (see [`portable_calls`]).
pub fn use_kernels(t: &Tensor) -> bool {
    let kernels = t.device().is_cpu() && !FORCED.with(Cell::get);
    if !kernels {
        PORTABLE_CALLS.fetch_add(1, Ordering::Relaxed);
    }
    kernels
}

/// How many times an op took the portable path in this process (tests check that the path
/// they mean to compare really ran).
pub fn portable_calls() -> usize {
    PORTABLE_CALLS.load(Ordering::Relaxed)
}

/// Runs `f` with the portable path forced on this thread (restored afterwards, also on panic).
/// Ops dispatch on the thread that calls them, so everything `f` calls directly takes the
/// portable path.
pub fn portable<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(true)));
    f()
}

/// Whether the portable path is forced on this thread (for code that must pass the choice
/// to another thread).
pub fn is_forced() -> bool {
    FORCED.with(Cell::get)
}

/// Runs `f` with the portable path forced when `forced` is true: carries the calling thread's
/// choice ([`is_forced`]) into work handed to another thread (`rayon::join`).
pub fn carry<R>(forced: bool, f: impl FnOnce() -> R) -> R {
    if forced {
        portable(f)
    } else {
        f()
    }
}
