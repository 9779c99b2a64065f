//! CPU time of the calling thread (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)` through the
//! `cpu-time` crate). On a shared machine it excludes the time other processes held the
//! core, which wall-clock time does not.

use std::time::Duration;

/// Time the calling thread has spent on a CPU, or `None` where the platform cannot say.
pub(crate) fn thread_time() -> Option<Duration> {
    cpu_time::ThreadTime::try_now().ok().map(|t| t.as_duration())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thread_time_advances_when_working() {
        let Some(before) = super::thread_time() else { return };
        let mut x = 1u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = super::thread_time().expect("still readable");
        assert!(after > before, "{before:?} -> {after:?}");
    }
}
