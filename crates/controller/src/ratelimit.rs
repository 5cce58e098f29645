//! A client-side token bucket for API requests (`--kube-qps`, `--kube-burst`), as client-go
//! has: `burst` requests at once, then `qps` per second. Watches are not limited.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// See the [module docs](self).
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter; `qps <= 0` means unlimited.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        if self.qps.is_nan() || self.qps <= 0.0 || self.qps.is_infinite() {
            return;
        }
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let (tokens, last) = *state;
                let tokens =
                    (tokens + now.duration_since(last).as_secs_f64() * self.qps).min(self.burst);
                if tokens >= 1.0 {
                    *state = (tokens - 1.0, now);
                    return;
                }
                *state = (tokens, now);
                wait_for(1.0 - tokens, self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// How long `missing` tokens take at `qps`, saturating: a tiny rate gives a very long wait
/// (tokio caps sleeps far in the future), never a panic in `Duration::from_secs_f64`.
fn wait_for(missing: f64, qps: f64) -> Duration {
    Duration::try_from_secs_f64(missing / qps).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_qps() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unlimited() {
        let limiter = RateLimiter::new(0.0, 1);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn tiny_rates_saturate_instead_of_panicking() {
        assert_eq!(wait_for(1.0, 1e-300), Duration::MAX);
        assert_eq!(wait_for(1.0, f64::MIN_POSITIVE), Duration::MAX);
        assert_eq!(wait_for(0.5, 0.5), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tiny_qps_serves_the_burst_then_waits_without_panicking() {
        let limiter = RateLimiter::new(1e-300, 2);
        limiter.acquire().await;
        limiter.acquire().await;
        let third = tokio::time::timeout(Duration::from_secs(3600), limiter.acquire()).await;
        assert!(third.is_err(), "no token for an hour at 1e-300 requests/s");
        let slow = RateLimiter::new(0.01, 1);
        slow.acquire().await;
        let start = Instant::now();
        slow.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(100));
    }
}
