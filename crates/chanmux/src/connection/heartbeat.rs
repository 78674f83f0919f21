//! Finding dead peers: a ping after a silent interval, and the end of the
//! connection when nothing at all answers it in time.
//!
//! The connection loop only notes that *something* arrived (a flag, no clock
//! read per frame); the timer looks at that flag once per interval. So a
//! busy connection pays nothing, and a silent one is pinged between one and
//! two intervals after its last frame.

use std::time::Duration;

/// The ping interval and pong timeout of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Heartbeat {
    interval: Duration,
    pong_timeout: Duration,
    /// A ping went out and nothing has arrived since.
    awaiting: bool,
}

/// What the connection does when the heartbeat's timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Beat {
    /// The peer was heard: look again after this long.
    Wait(Duration),
    /// Silent for an interval: send a ping, and look again after this long.
    Ping(Duration),
    /// Silent since the ping for the whole pong timeout: the peer is gone.
    Dead,
}

impl Heartbeat {
    /// `None` when pings are off (a zero interval).
    pub(super) fn new(interval: Duration, pong_timeout: Duration) -> Option<Self> {
        (!interval.is_zero()).then_some(Heartbeat {
            interval,
            pong_timeout,
            awaiting: false,
        })
    }

    /// When the timer should first fire.
    pub(super) fn first(&self) -> Duration {
        self.interval
    }

    /// The timer fired; `heard` says whether anything arrived since it last
    /// did (the caller clears it).
    pub(super) fn fire(&mut self, heard: bool) -> Beat {
        if heard {
            self.awaiting = false;
            Beat::Wait(self.interval)
        } else if self.awaiting {
            Beat::Dead
        } else {
            self.awaiting = true;
            Beat::Ping(self.pong_timeout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_pings_then_ends() {
        let mut beat = Heartbeat::new(Duration::from_secs(25), Duration::from_secs(10)).unwrap();
        assert_eq!(beat.first(), Duration::from_secs(25));
        assert_eq!(beat.fire(true), Beat::Wait(Duration::from_secs(25)));
        assert_eq!(beat.fire(false), Beat::Ping(Duration::from_secs(10)));
        assert_eq!(beat.fire(false), Beat::Dead);
    }

    #[test]
    fn an_answer_resets_it() {
        let mut beat = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        assert_eq!(beat.fire(false), Beat::Ping(Duration::from_secs(1)));
        assert_eq!(beat.fire(true), Beat::Wait(Duration::from_secs(1)));
        assert_eq!(beat.fire(false), Beat::Ping(Duration::from_secs(1)));
    }

    #[test]
    fn zero_interval_is_off() {
        assert!(Heartbeat::new(Duration::ZERO, Duration::from_secs(10)).is_none());
    }
}
