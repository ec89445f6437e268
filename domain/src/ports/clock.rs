//! Time, injected so tests can fix it.

use crate::Timestamp;

#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock, truncated to microseconds: the precision both stores
/// keep, so a value reads back exactly as it was written.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::TimeDelta::microseconds(1))
            .expect("truncating the current time to microseconds cannot overflow")
    }
}
