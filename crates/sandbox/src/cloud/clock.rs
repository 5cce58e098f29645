//! The sandbox's clock: wall time plus an offset that tests fast-forward, so that expiry of
//! tokens and credentials can be tested without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_seconds: AtomicI64,
}

impl Clock {
    /// A clock at wall time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Now, Unix seconds.
    pub fn now(&self) -> i64 {
        wall_now() + self.offset_seconds.load(Ordering::Relaxed)
    }

    /// Now, as a `SystemTime`.
    pub fn now_system_time(&self) -> SystemTime {
        let offset = self.offset_seconds.load(Ordering::Relaxed);
        let wall = SystemTime::now();
        if offset >= 0 {
            wall + Duration::from_secs(offset.unsigned_abs())
        } else {
            wall - Duration::from_secs(offset.unsigned_abs())
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 2);
        self.offset_seconds.fetch_add(secs, Ordering::Relaxed);
    }
}

/// Wall time, Unix seconds.
pub(crate) fn wall_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now() {
        let c = Clock::new();
        let before = c.now();
        c.advance(Duration::from_secs(3600));
        assert!(c.now() >= before + 3600);
        assert!(c.now() < before + 3700);
    }
}
