//! The services' clock in a daemon: the wall clock, and tokio's timer for
//! the pauses the services ask for. It lives here because this adapter owns
//! the async runtime the services run on.

use std::time::Duration;

use vm_domain::ports::{now_in_microseconds, Clock, Sleep};
use vm_domain::Timestamp;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now_in_microseconds()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}
