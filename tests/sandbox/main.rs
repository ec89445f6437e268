//! The sandbox suite (SPEC §9, `vm-system help security`): each test attacks
//! the real daemon from inside a session, the way hostile code or a hostile
//! worktree would, and checks that the attack fails and that nothing outside
//! the worktree was read, written, signalled or left running. Every test
//! runs twice: with the daemon as root, and as an unprivileged user.

mod harness;

/// One attack, expanded into a test with the daemon as root and one with
/// the daemon as an unprivileged user.
macro_rules! attack {
    ($name:ident, |$lab:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn daemon_as_root() {
                if let Some($lab) = crate::harness::Lab::start(crate::harness::As::Root) $body
            }
            #[test]
            fn daemon_as_unprivileged_user() {
                if let Some($lab) = crate::harness::Lab::start(crate::harness::As::Unprivileged) $body
            }
        }
    };
}

mod extra;
mod filesystem;
mod modules;
mod network;
mod privileges;
mod processes;
mod startup;
