//! Process settings under which the kernels run fastest on CPU. `ganfold_core::train` applies
//! them itself, so a notebook or another program trains at the CLI's speed without knowing them.
//!
//! - Candle's elementwise ops use a pool of spinning worker threads sized by
//!   `CANDLE_NUM_THREADS`; on a few cores they compete with the GEMM threads that do the real work
//!   (about 10 % of the DCGAN-28 step on 2 cores). The kernels parallelise the heavy elementwise
//!   work themselves, so [`tune`] sets it to 1 unless the user has set it.
//! - glibc's malloc returns large freed blocks to the OS, and a training step frees and
//!   re-allocates the same multi-MB buffers, so every step faulted them in again page by page.
//!   [`tune`] keeps them: no block is served by its own mmap, and neither the main heap nor a
//!   thread's heap is given back. (A program with its own global allocator, as the CLI has, is
//!   unaffected.)
//! - [`install`] runs the work on a rayon worker: the caller is then one of the pool's threads,
//!   not an extra thread competing with the pool's idle-spinning workers between kernels.

use std::sync::{Once, OnceLock};

/// Applies the process settings once; later calls do nothing. Call it before the first tensor
/// operation of the process if you can (Candle sizes its pool on first use).
pub fn tune() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            // SAFETY: the environment is only unsound to write while another thread reads it.
            // ganfold calls this before it starts threads of its own; a host that reads the
            // environment from other threads can set CANDLE_NUM_THREADS first, and then nothing
            // is written here.
            unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
        }
        keep_freed_memory();
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // glibc's mallopt parameters (malloc.h). The mmap threshold cannot go above 32 MiB, and an
    // LGAN step on MNIST allocates 49 MiB blocks, which glibc then mmaps and unmaps every step:
    // M_MMAP_MAX = 0 serves every block from a heap instead (so no threshold is needed). The
    // rayon workers allocate from per-thread heaps of 64 MiB, which glibc unmaps as soon as they
    // are empty unless the top pad is a whole heap; the main heap is trimmed only with 1 GiB free
    // at its top. Measured with strace on a notebook kernel training LGAN: 280 mmap/munmap calls
    // in 10 s before (about 1.4 ms each, plus the page faults of the fresh pages), none after.
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_TOP_PAD: i32 = -2;
    const M_MMAP_MAX: i32 = -4;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only changes thresholds of the allocator; it is thread-safe.
    unsafe {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TOP_PAD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Runs `f` with the settings of [`tune`], on a worker of a rayon pool with one thread per core
/// (or inline when the caller already is a rayon worker, e.g. in a pool sized for parallel runs).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    tune();
    if rayon::current_thread_index().is_some() {
        return f();
    }
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    match POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().thread_name(|i| format!("ganfold-{i}")).build().ok()) {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn install_runs_on_a_worker_and_nests_inline() {
        let (outer, inner) = super::install(|| {
            let outer = rayon::current_thread_index();
            (outer, super::install(rayon::current_thread_index))
        });
        assert!(outer.is_some());
        assert_eq!(outer, inner);
        assert!(std::env::var_os("CANDLE_NUM_THREADS").is_some());
    }
}
