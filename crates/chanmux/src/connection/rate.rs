//! A per-connection token bucket for incoming frames.
//!
//! Tokens are taken without reading the clock; only an empty bucket looks
//! at the time to refill, and a full one to start counting again, so a
//! connection pays one decrement per frame and a clock read per burst.

use std::time::Duration;

use tokio::time::Instant;

/// Up to `rate` frames per second, in bursts of up to `rate`.
#[derive(Debug)]
pub(super) struct FrameRate {
    rate: u32,
    tokens: u32,
    /// Time up to which refills have been counted.
    last: Instant,
}

impl FrameRate {
    /// A full bucket; `None` when `rate` is 0 (no limit).
    pub(super) fn new(rate: u32) -> Option<Self> {
        (rate > 0).then(|| FrameRate {
            rate,
            tokens: rate,
            last: Instant::now(),
        })
    }

    /// Takes a token for one frame; `false` when the frame is over the limit.
    pub(super) fn allow(&mut self) -> bool {
        if self.tokens == self.rate {
            // Time spent full earned nothing: refills count from here.
            self.last = Instant::now();
        } else if self.tokens == 0 {
            self.refill(Instant::now());
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let rate = u128::from(self.rate);
        let earned = elapsed.as_nanos() * rate / 1_000_000_000;
        if earned >= rate {
            self.tokens = self.rate;
            self.last = now;
        } else if earned > 0 {
            // Keep the fraction of a token already earned.
            let spent = Duration::from_nanos((earned * 1_000_000_000 / rate) as u64);
            self.tokens = earned as u32;
            self.last += spent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_up_to_the_rate_then_refills_over_time() {
        let mut bucket = FrameRate::new(10).unwrap();
        assert_eq!((0..20).filter(|_| bucket.allow()).count(), 10);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.allow());
        assert!(!bucket.allow());
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!((0..10).filter(|_| bucket.allow()).count(), 2);
        // Half a token was kept: another 50 ms makes a whole one.
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(bucket.allow());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..20).filter(|_| bucket.allow()).count(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn sustained_rate_is_the_limit() {
        let mut bucket = FrameRate::new(100).unwrap();
        let mut allowed = 0;
        for _ in 0..1000 {
            // 1,000 frames/s offered for 1 s.
            allowed += usize::from(bucket.allow());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        // The burst of 100 plus 100 earned in the second.
        assert!((195..=201).contains(&allowed), "{allowed}");
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_full_earns_no_extra_burst() {
        let mut bucket = FrameRate::new(10).unwrap();
        tokio::time::advance(Duration::from_millis(990)).await;
        assert_eq!((0..30).filter(|_| bucket.allow()).count(), 10);
    }

    #[test]
    fn zero_is_no_limit() {
        assert!(FrameRate::new(0).is_none());
    }
}
