//! What a process of the daemon's sessions costs, read from `/proc`: its
//! CPU time (for the CPU limit and metrics) and its resident memory (for
//! metrics). `None` once the process is gone.

/// CPU time (user and system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_time_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * (1_000_000_000 / clock_ticks()))
}

/// Resident memory of a process, in bytes, from `/proc/<pid>/statm`.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_memory_and_a_gone_one_nothing() {
        let me = std::process::id() as i32;
        assert!(rss_bytes(me).is_some_and(|rss| rss > 1 << 20), "a test binary holds more than 1 MiB");
        assert!(cpu_time_ns(me).is_some());
        assert_eq!(rss_bytes(i32::MAX), None);
        assert_eq!(cpu_time_ns(i32::MAX), None);
    }
}
