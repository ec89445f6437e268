//! Landlock: the session's worker restricts itself, and everything it starts
//! inherits it. Files: read-write beneath the worktree, read and execute
//! beneath the read-only paths, read-write on the device files, read of the
//! session's own `/proc` and `passwd`; nothing else, whatever the mounts
//! show. TCP bind and connect: none. Scopes: no signal to, and no abstract
//! unix socket of, any process outside the session. It cannot stop what
//! needs no file access (syscalls, resources): see [`super::seccomp`] and
//! the OS limits.

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
