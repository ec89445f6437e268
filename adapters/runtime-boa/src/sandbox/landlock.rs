//! Landlock: the session's worker restricts itself, and everything it starts
//! inherits it. Files: read-write beneath the worktree, read and execute
//! beneath the read-only paths, read-write on the device files, read of the
//! session's own `/proc` and `passwd`; nothing else, whatever the mounts
//! show. TCP bind and connect: none. Scopes: no signal to, and no abstract
//! unix socket of, any process outside the session. The programs a worker
//! starts get a nested domain that only scopes signals: they cannot signal
//! the session's own worker processes either, so a program cannot kill the
//! live worker and its checkpoint (see [`program_scope`]). It cannot stop
//! what needs no file access (syscalls, resources): see [`super::seccomp`]
//! and the OS limits.

use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};

use super::SandboxError;

/// The Landlock version whose rights the guarantee needs: signal and
/// abstract unix socket scoping arrived in ABI 6 (Linux 6.12).
pub const REQUIRED_ABI: ABI = ABI::V6;

/// Restricts the calling process (and its future children) to `rules`.
pub fn restrict(worktree: &Path, read_only: &[PathBuf], devices: &[PathBuf]) -> Result<(), SandboxError> {
    let abi = REQUIRED_ABI;
    let own: [&Path; 3] = [Path::new("/proc"), Path::new("/etc/passwd"), Path::new("/etc/group")];
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([worktree], AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(read_only, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(devices, AccessFs::ReadFile | AccessFs::WriteFile)))
        .and_then(|r| r.add_rules(path_beneath_rules(own, AccessFs::from_read(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|err| SandboxError::Landlock(err.to_string()))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(SandboxError::Landlock(format!("the kernel enforced the ruleset only partly ({status:?})")));
    }
    Ok(())
}

/// A ruleset that only scopes signals, for a program a worker is about to
/// start (see [`restrict_to`]): the program runs in a domain nested in the
/// session's, so it may signal itself and its own descendants but not the
/// session's keeper, live worker or checkpoint (killing those two would
/// lose the session's state). Each `exec` call is a domain of its own, so
/// a program cannot signal what an earlier call left running either.
/// Abstract unix sockets stay scoped to the session only: its programs
/// still talk to one another across calls.
pub fn program_scope() -> Result<OwnedFd, SandboxError> {
    let created = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .scope(Scope::Signal)
        .and_then(|r| r.create())
        .map_err(|err| SandboxError::Landlock(err.to_string()))?;
    Option::<OwnedFd>::from(created)
        .ok_or_else(|| SandboxError::Landlock("the kernel made no ruleset for programs".into()))
}

/// Restricts the calling process with `ruleset` (from [`program_scope`]).
/// Only a system call: safe between `fork` and `exec`. Needs
/// `no_new_privs`, which a confined worker has.
pub fn restrict_to(ruleset: RawFd) -> std::io::Result<()> {
    // SAFETY: landlock_restrict_self with a ruleset descriptor and no flags.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's Landlock ABI version, or why there is none.
pub fn kernel_abi() -> Result<i64, String> {
    // SAFETY: landlock_create_ruleset in version-query mode takes no pointer.
    let version =
        unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<libc::c_void>(), 0usize, 1u32) };
    if version < 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no Landlock (built without CONFIG_SECURITY_LANDLOCK)".into(),
            Some(libc::EOPNOTSUPP) => "Landlock is disabled at boot (add landlock to the lsm= boot parameter)".into(),
            _ => format!("cannot query Landlock: {err}"),
        });
    }
    Ok(version)
}
