//! Time, injected so tests can fix it: the current instant, and waiting.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::Timestamp;

/// A pause that [`Clock::sleep`] returns.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Resolves once `duration` has passed. The services use it to pace
    /// background work (storing a running execution's events); the domain
    /// knows no async runtime, so the adapter that has one supplies it.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The wall clock's current instant, truncated to microseconds: the
/// precision both stores keep, so a value reads back exactly as it was
/// written. For [`Clock::now`] implementations.
pub fn now_in_microseconds() -> Timestamp {
    chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::TimeDelta::microseconds(1))
        .expect("truncating the current time to microseconds cannot overflow")
}
