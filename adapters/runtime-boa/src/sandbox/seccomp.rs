//! seccomp-bpf: system calls a session never needs are refused with
//! `EPERM`, for the worker and everything it starts: tracing other
//! processes, mounting, new namespaces, BPF, perf, keyrings, kernel modules,
//! reboot, io_uring (which would bypass this filter), and sockets other than
//! unix ones (`EAFNOSUPPORT`). `clone3` answers `ENOSYS`, so the C library
//! falls back to `clone`, whose namespace flags this filter can see. Calls
//! of another ABI are refused too: a 32-bit `int 0x80` call kills the
//! process (the architecture check), an x32 call (bit 30 of the number)
//! answers `EPERM`, so no rule is sidestepped by another numbering.
//!
//! A program cannot set another process's limits (`prlimit` on the
//! worker, to raise what the programs it starts next inherit).
//!
//! No set-uid or set-gid file can be made: the worktree is written as its
//! owner (the daemon's user, or the worktree's owner when the daemon is
//! root), so such a file would run as that owner for anyone on the host who
//! starts it. `chmod` and the calls that create files with a mode refuse
//! those bits (`EPERM`); the programs a session starts also get `ENOSYS`
//! for `openat2`, whose mode this filter cannot see (the C library falls
//! back to `openat`; the worker keeps `openat2`, which `fs` needs and which
//! never asks for those bits). It cannot tell files apart: see
//! [`super::landlock`].

use std::collections::BTreeMap;

use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
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

/// Calls that set a file's mode, with the index of their mode argument:
/// refused when it holds the set-uid or set-gid bit.
const MODE_SETTERS: &[(libc::c_long, u8)] = &[
    (libc::SYS_fchmod, 1),
    (libc::SYS_fchmodat, 2),
    (libc::SYS_fchmodat2, 2),
    (libc::SYS_openat, 3),
    (libc::SYS_mknodat, 2),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_chmod, 1),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_open, 2),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_creat, 1),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_mknod, 1),
];

fn filter(
    rules: Vec<(libc::c_long, Vec<SeccompRule>)>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, SandboxError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = rules.into_iter().collect();
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
            SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)
                .and_then(|c| SeccompRule::new(vec![c]))
                .map_err(|err| SandboxError::Seccomp(err.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    denied.push((libc::SYS_ioctl, ioctl_rules));
    // Another process's limits (the worker's, which its programs could
    // otherwise raise for the programs it starts next): read, not set.
    let others_limits = [(0, SeccompCmpOp::Ne, 0), (2, SeccompCmpOp::Ne, 0)]
        .into_iter()
        .map(|(arg, op, value)| SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value))
        .collect::<Result<Vec<_>, _>>()
        .and_then(SeccompRule::new)
        .map_err(|err| SandboxError::Seccomp(err.to_string()))?;
    denied.push((libc::SYS_prlimit64, vec![others_limits]));
    for &(nr, arg) in MODE_SETTERS {
        let rules = [libc::S_ISUID, libc::S_ISGID]
            .iter()
            .map(|&bit| {
                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit as u64), bit as u64)
                    .and_then(|c| SeccompRule::new(vec![c]))
                    .map_err(|err| SandboxError::Seccomp(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        denied.push((nr, rules));
    }
    let not_unix = || condition(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64).map(|rule| vec![rule]);
    let sockets = vec![(libc::SYS_socket, not_unix()?), (libc::SYS_socketpair, not_unix()?)];
    let mut programs = vec![
        filter(vec![(libc::SYS_clone3, Vec::new())], libc::ENOSYS, arch)?,
        filter(sockets, libc::EAFNOSUPPORT, arch)?,
        filter(denied, libc::EPERM, arch)?,
    ];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_refused());
    Ok(programs)
}

/// x86_64 only: x32 calls share the architecture value of x86_64 and carry
/// bit 30 in their number, so the rules above, written with x86_64 numbers,
/// would not match them. Refuses every one of them with `EPERM` (a kernel
/// without x32 would answer `ENOSYS`).
#[cfg(target_arch = "x86_64")]
fn x32_refused() -> BpfProgram {
    use seccompiler::sock_filter;
    const LOAD_WORD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JUMP_EQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JUMP_GE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    const NR: u32 = 0; // offsetof(struct seccomp_data, nr)
    const ARCH: u32 = 4; // offsetof(struct seccomp_data, arch)
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LOAD_WORD, 0, 0, ARCH),
        // Another architecture: the other filters kill the process.
        op(JUMP_EQ, 0, 3, AUDIT_ARCH_X86_64),
        op(LOAD_WORD, 0, 0, NR),
        op(JUMP_GE, 0, 1, X32_SYSCALL_BIT),
        op(RETURN, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RETURN, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Installs the filters on the calling process; its children inherit them.
/// Needs `no_new_privs` (set by [`super::credentials::drop_privileges`]).
pub fn install() -> Result<(), SandboxError> {
    for program in compiled()? {
        seccompiler::apply_filter(program).map_err(|err| SandboxError::Seccomp(err.to_string()))?;
    }
    Ok(())
}

/// The session's filters, compiled once per process: [`prepare`] in the
/// zygote, so every worker forked from it starts with them compiled.
fn compiled() -> Result<&'static [BpfProgram], SandboxError> {
    static PROGRAMS: OnceLock<Result<Vec<BpfProgram>, String>> = OnceLock::new();
    match PROGRAMS.get_or_init(|| programs().map_err(|err| err.to_string())) {
        Ok(programs) => Ok(programs),
        Err(reason) => Err(SandboxError::Seccomp(reason.clone())),
    }
}

/// Compiles the filters (and the programs' one) ahead of the first fork.
pub fn prepare() {
    let _ = compiled();
    prepare_program_filter();
}

/// The filter a program started by a confined worker gets on top of the
/// worker's: `openat2` answers `ENOSYS` (see the module's introduction).
fn program_filter() -> Option<&'static BpfProgram> {
    static PROGRAM: OnceLock<Option<BpfProgram>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            let arch = TargetArch::try_from(std::env::consts::ARCH).ok()?;
            filter(vec![(libc::SYS_openat2, Vec::new())], libc::ENOSYS, arch).ok()
        })
        .as_ref()
}

/// Builds the programs' filter: call before forking.
pub fn prepare_program_filter() {
    let _ = program_filter();
}

/// Adds the programs' filter to the calling process, a forked child about
/// to run a program (see [`super::confine_program`]).
pub fn install_program_filter() -> std::io::Result<()> {
    let program = program_filter().ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOSYS))?;
    seccompiler::apply_filter(program).map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filters_compile_for_this_architecture() {
        let expected = if cfg!(target_arch = "x86_64") { 4 } else { 3 };
        assert_eq!(super::programs().expect("the filters compile").len(), expected);
        assert!(super::program_filter().is_some());
    }
}
