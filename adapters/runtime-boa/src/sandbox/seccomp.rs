//! seccomp-bpf: system calls a session never needs are refused with
//! `EPERM`, for the worker and everything it starts: tracing other
//! processes, mounting, new namespaces, BPF, perf, keyrings, kernel modules,
//! reboot, io_uring (which would bypass this filter), and sockets other than
//! unix ones (`EAFNOSUPPORT`). `clone3` answers `ENOSYS`, so the C library
//! falls back to `clone`, whose namespace flags this filter can see. It
//! cannot tell files apart: see [`super::landlock`].

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

use super::SandboxError;

/// Refused outright.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_fanotify_init,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// `clone` flags that would make new namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
    0x80, // CLONE_NEWTIME
];

/// Terminal ioctls that push input into a terminal or read its screen.
const DENIED_IOCTLS: &[libc::c_ulong] = &[libc::TIOCSTI, libc::TIOCLINUX];

fn filter(
    rules: Vec<(libc::c_long, Vec<SeccompRule>)>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, SandboxError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = rules.into_iter().map(|(nr, r)| (nr as i64, r)).collect();
    SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), arch)
        .and_then(BpfProgram::try_from)
        .map_err(|err| SandboxError::Seccomp(err.to_string()))
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, SandboxError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|err| SandboxError::Seccomp(err.to_string()))
}

/// The session's filters, compiled.
fn programs() -> Result<Vec<BpfProgram>, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|err| SandboxError::Seccomp(err.to_string()))?;
    let mut denied: Vec<(libc::c_long, Vec<SeccompRule>)> = DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| condition(0, SeccompCmpOp::MaskedEq(flag as u64), flag as u64))
        .collect::<Result<Vec<_>, _>>()?;
    denied.push((libc::SYS_clone, clone_rules));
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|&request| {
            SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request as u64)
                .and_then(|c| SeccompRule::new(vec![c]))
                .map_err(|err| SandboxError::Seccomp(err.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    denied.push((libc::SYS_ioctl, ioctl_rules));
    let not_unix = || condition(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64).map(|rule| vec![rule]);
    let sockets = vec![(libc::SYS_socket, not_unix()?), (libc::SYS_socketpair, not_unix()?)];
    Ok(vec![
        filter(vec![(libc::SYS_clone3, Vec::new())], libc::ENOSYS, arch)?,
        filter(sockets, libc::EAFNOSUPPORT, arch)?,
        filter(denied, libc::EPERM, arch)?,
    ])
}

/// Installs the filters on the calling process; its children inherit them.
/// Needs `no_new_privs` (set by [`super::credentials::drop_privileges`]).
pub fn install() -> Result<(), SandboxError> {
    for program in programs()? {
        seccompiler::apply_filter(&program).map_err(|err| SandboxError::Seccomp(err.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filters_compile_for_this_architecture() {
        assert_eq!(super::programs().expect("the filters compile").len(), 3);
    }
}
