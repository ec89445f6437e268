//! `fetch` for sessions, performed by the daemon (SPEC §9, §11): a session's
//! worker has no network at all, so every request a script makes crosses
//! its channel, and the daemon checks it against the session's policy and
//! performs it. Daemon side only; the worker's half is
//! [`crate::worker::fetch`].
//!
//! - [`policy`]: what a session may reach, as data.
//! - [`client`]: the requests themselves, hop by hop.
//! - [`job`]: the requests of one running job, their answers and events.

pub mod client;
pub mod job;
pub mod policy;

pub use client::{perform, Performed};
pub use policy::{FetchPolicy, Refusal};
