//! The operating system's limits on a session worker: address space, file
//! size, processes, core dumps, and a CPU-time backstop re-armed before every
//! job; plus the signal dispositions a worker starts with.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::sys::signal::{signal, SigHandler, SigSet, SigmaskHow, Signal};
use vm_domain::template::Limits;

use crate::error::StartError;

const MIB: u64 = 1024 * 1024;
/// Largest file a worker (or a program it runs) may write.
pub const MAX_FILE_BYTES: u64 = 1024 * MIB;
/// Room above the engine's heap for its stack (64 MiB), SQLite and the
/// programs `exec` starts; the allocator enforces `mem_mb` itself, this
/// only stops what bypasses it.
const ADDRESS_SPACE_SLACK: u64 = 512 * MIB;
/// Processes (and threads) a worker may add to its user's count.
const EXTRA_TASKS: u64 = 64;
/// Open files a worker may hold.
const MAX_OPEN_FILES: u64 = 1024;

/// The signal state every worker starts from: nothing blocked, children
/// reported normally, and writes to closed pipes or past the file-size
/// limit failing with an error instead of killing the process.
pub fn reset_signals() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: only default and ignore dispositions are installed; no handler code runs.
    unsafe {
        let _ = signal(Signal::SIGCHLD, SigHandler::SigDfl);
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
        let _ = signal(Signal::SIGXFSZ, SigHandler::SigIgn);
    }
}

/// Applies the session's OS limits. The address space allows the worker's
/// current mappings, twice `mem_mb` and some slack: a backstop for the
/// allocator's exact count.
pub fn apply(limits: &Limits) -> Result<(), StartError> {
    let set = |resource: Resource, soft: u64, what: &'static str| {
        let (_, hard) = getrlimit(resource).map_err(|source| StartError::Limit { action: "read", what, source })?;
        let soft = if hard == RLIM_INFINITY { soft } else { soft.min(hard) };
        setrlimit(resource, soft, hard).map_err(|source| StartError::Limit { action: "set", what, source })
    };
    set(Resource::RLIMIT_CORE, 0, "core size")?;
    set(Resource::RLIMIT_FSIZE, MAX_FILE_BYTES, "file size")?;
    set(Resource::RLIMIT_NOFILE, MAX_OPEN_FILES, "open files")?;
    let mapped = mapped_bytes().unwrap_or(256 * MIB);
    let heap = limits.mem_mb.saturating_mul(MIB).saturating_mul(2);
    set(Resource::RLIMIT_AS, mapped.saturating_add(heap).saturating_add(ADDRESS_SPACE_SLACK), "address space")?;
    arm_process_count();
    Ok(())
}

/// Allows [`EXTRA_TASKS`] more processes and threads than the user runs
/// now. `RLIMIT_NPROC` counts every task of the user, so it is re-armed just
/// before `exec` starts a program (and does not apply to root).
pub fn arm_process_count() {
    let now = tasks_of_this_user().unwrap_or(4096);
    let _ = setrlimit(Resource::RLIMIT_NPROC, now + EXTRA_TASKS, RLIM_INFINITY)
        .or_else(|_| setrlimit(Resource::RLIMIT_NPROC, now + EXTRA_TASKS, now + EXTRA_TASKS));
}

/// Re-arms the CPU-time backstop before a job: the kernel sends `SIGXCPU`
/// once the worker has used about `cpu_ms` more (rounded up to whole
/// seconds, plus one). The supervisor's own sampling is the precise limit.
pub fn arm_cpu(cpu_ms: u64) {
    let used_s = cpu_time_ns() / 1_000_000_000;
    let soft = used_s + cpu_ms.div_ceil(1000) + 1;
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CPU) {
        let soft = if hard == RLIM_INFINITY { soft } else { soft.min(hard) };
        let _ = setrlimit(Resource::RLIMIT_CPU, soft, hard);
    }
}

/// CPU time this process has used, in nanoseconds.
pub fn cpu_time_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) } != 0 {
        return 0;
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Bytes of address space this process has mapped.
fn mapped_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// Tasks (processes and threads) owned by this process's real user.
fn tasks_of_this_user() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut tasks = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            tasks += std::fs::read_dir(entry.path().join("task")).map_or(1, |t| t.count() as u64);
        }
    }
    Some(tasks)
}

/// Lets go of this process's page-table entries for unmodified file pages
/// (the program's code and read-only data, shared libraries). Their content
/// stays in the page cache, shared with the zygote; a later job maps what it
/// touches again with minor faults. Called once a worker has been idle a
/// while, so an idle worker's resident set is its own memory, not the code
/// it last ran. Mappings holding any private (relocated or written) page
/// are left alone.
pub fn trim_idle() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-').filter(|(s, _)| s.bytes().all(|b| b.is_ascii_hexdigit())) {
            let perms = fields.next().unwrap_or_default();
            let path = fields.nth(3).unwrap_or_default();
            current = None;
            if path.starts_with('/') && !perms.contains('w') {
                if let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                    current = Some((start, end));
                }
            }
        } else if first == "Anonymous:" {
            let private = fields.next().unwrap_or("1") != "0";
            if let (Some((start, end)), false) = (current.take(), private) {
                // SAFETY: a read-only file mapping of this single-threaded
                // process with no private pages: dropping its entries only
                // means refaulting the same file content later.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            }
        }
    }
}
