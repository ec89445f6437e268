//! Credentials: a session holds no privilege. A root daemon's session runs
//! as the unprivileged `--sandbox-user` in a user namespace of its own (so
//! its process cap counts only its own processes); every session loses
//! every capability, bounding and ambient sets included, and gets
//! `no_new_privs`, so set-uid programs and file capabilities elevate
//! nothing. Alone this does not confine files the user may read: see
//! [`super::mounts`] and [`super::landlock`].

use std::io;

use super::SandboxError;
use crate::protocol::SandboxUser;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Becomes `user` (a root daemon's session); the caller is in the session's
/// own user namespace, which maps the user to itself.
pub fn become_user(user: SandboxUser) -> Result<(), SandboxError> {
    let step = |what: &'static str| move |err: nix::Error| SandboxError::Credentials { what, source: err.into() };
    let gid = nix::unistd::Gid::from_raw(user.gid);
    let uid = nix::unistd::Uid::from_raw(user.uid);
    nix::unistd::setgroups(&[gid]).map_err(step("set the supplementary groups"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(step("change group"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(step("change user"))?;
    Ok(())
}

/// Drops every capability for good and sets `no_new_privs`.
pub fn drop_privileges() -> Result<(), SandboxError> {
    let fail = |what: &'static str| SandboxError::Credentials { what, source: io::Error::last_os_error() };
    // SAFETY: prctl with integer arguments only.
    unsafe {
        let mut cap = 0;
        while libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) >= 0 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(fail("drop the capability bounding set"));
            }
            cap += 1;
        }
        if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(fail("clear the ambient capabilities"));
        }
        let bits = libc::SECBIT_NOROOT
            | libc::SECBIT_NOROOT_LOCKED
            | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
            | libc::SECBIT_KEEP_CAPS_LOCKED
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE
            | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        if libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(fail("lock the securebits"));
        }
        let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) != 0 {
            return Err(fail("clear the capabilities"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("set no_new_privs"));
        }
    }
    Ok(())
}

/// Makes the worker undumpable: the programs it starts (which run as the
/// same user) cannot open its `/proc` entries (memory, descriptors) or
/// trace it, so they cannot take over its channel to the daemon. A program
/// that `exec` starts is dumpable again, as usual.
pub fn undumpable() -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(SandboxError::Credentials {
            what: "make the worker undumpable",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}
