//! More attacks on guarantees 1 to 6, from a reviewer's list: kernel
//! interfaces under `/proc` and `/dev`, links out of the read-only mounts,
//! set-uid files left in the worktree for the host, system calls of another
//! ABI, limits raised from inside, a worktree swapped for a symlink while
//! its session starts, and a worktree that holds system directories.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::Lab;

/// Runs a Python script in the session with `sh`; `None` (with a note) when
/// the host has no python3.
fn python(lab: &Lab, session: &str, script: &str) -> Option<crate::harness::Shell> {
    let out = lab.sh(session, &format!("python3 - <<'PY'\n{script}\nPY"));
    if out.stderr.contains("not found") {
        eprintln!("note: python3 is missing; skipping this probe");
        return None;
    }
    Some(out)
}

attack!(kernel_interfaces_under_proc_sys_and_dev_are_out_of_reach, |lab| {
    let session = lab.session();
    let script = "\
        echo b > /proc/sysrq-trigger && echo WROTE-sysrq; \
        echo 1 > /proc/sys/vm/drop_caches && echo WROTE-drop_caches; \
        echo pwned > /proc/sys/kernel/hostname && echo WROTE-hostname; \
        echo '|/bin/sh' > /proc/sys/kernel/core_pattern && echo WROTE-core_pattern; \
        head -c 1 /proc/kcore >/dev/null && echo READ-kcore; \
        head -c 1 /proc/kmsg >/dev/null && echo READ-kmsg; \
        ls /sys >/dev/null && echo SEEN-sys; \
        for d in mem kmem port kmsg tty console ptmx shm sda vda fuse net/tun; do \
          [ -e /dev/$d ] && echo SEEN-dev-$d; done; \
        echo done";
    let out = lab.sh(&session, script);
    assert!(out.stdout.contains("done"), "{out:?}");
    for word in ["WROTE", "READ", "SEEN"] {
        assert!(!out.stdout.contains(word), "a kernel interface is reachable: {out:?}");
    }
    // The twin: the four documented devices work.
    let out = lab.sh(&session, "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c");
    assert_eq!(out.stdout, "4\n4\n", "{out:?}");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert!(!pattern.contains("/bin/sh"), "the host's core pattern was changed: {pattern}");
});

attack!(device_files_cannot_be_made, |lab| {
    let session = lab.session();
    let Some(out) = python(
        &lab,
        &session,
        "import os, stat\n\
         for name, kind, dev in [('mem', stat.S_IFCHR, os.makedev(1, 1)), ('disk', stat.S_IFBLK, os.makedev(8, 0))]:\n\
         \x20   try:\n\
         \x20       os.mknod(name, kind | 0o666, dev); print('MADE', name)\n\
         \x20   except OSError as e:\n\
         \x20       print('refused', name, e.errno)\n",
    ) else {
        return;
    };
    assert_eq!(out.stdout.matches("refused").count(), 2, "{out:?}");
    assert!(!lab.worktree().join("mem").exists() && !lab.worktree().join("disk").exists());
});

attack!(links_cannot_reach_into_the_read_only_mounts, |lab| {
    let target = std::path::Path::new("/usr/bin/env");
    let before = std::fs::read(target).unwrap();
    let session = lab.session();
    let script = "\
        ln /usr/bin/env hard-env && echo LINKED; \
        ln -s /usr/bin/env soft-env; echo pwned >> soft-env && echo WROTE-through-symlink; \
        mv /usr/bin/env ./moved-env && echo MOVED; \
        cp /usr/bin/env ./copied-env && echo 'x' >> ./copied-env && echo COPY-WRITABLE; \
        echo done";
    let out = lab.sh(&session, script);
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(
        !out.stdout.contains("LINKED") && !out.stdout.contains("WROTE") && !out.stdout.contains("MOVED"),
        "{out:?}"
    );
    // The twin: a copy in the worktree is the session's own to change.
    assert!(out.stdout.contains("COPY-WRITABLE"), "{out:?}");
    assert_eq!(std::fs::read(target).unwrap(), before, "/usr/bin/env was changed from a session");
    assert!(!lab.worktree().join("hard-env").exists());
});

attack!(a_session_leaves_no_set_uid_or_set_gid_file_for_the_host, |lab| {
    // The worktree is written as its owner (root, with the daemon as root):
    // a set-uid copy of a shell left there would make anyone on the host
    // who runs it that owner.
    let session = lab.session();
    let out = lab.sh(
        &session,
        "cp /usr/bin/id ./suid-id && chmod 755 ./suid-id && echo CHMOD-OK; \
         chmod u+s ./suid-id; chmod g+s ./suid-id; chmod 6755 ./suid-id; \
         install -m 4755 /usr/bin/id ./installed-id; \
         mkdir -p sgid-dir; chmod g+s sgid-dir; echo done",
    );
    assert!(out.stdout.contains("CHMOD-OK") && out.stdout.contains("done"), "{out:?}");
    python(
        &lab,
        &session,
        "import os, ctypes, stat\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         for name, make in [\n\
         \x20   ('open', lambda: os.close(os.open('by-open', os.O_CREAT | os.O_WRONLY, 0o4755))),\n\
         \x20   ('mknod', lambda: os.mknod('by-mknod', stat.S_IFREG | 0o2755)),\n\
         \x20   ('fchmod', lambda: os.fchmod(os.open('hello.txt', os.O_RDONLY), 0o4644)),\n\
         ]:\n\
         \x20   try:\n\
         \x20       make(); print('MADE', name)\n\
         \x20   except OSError as e:\n\
         \x20       print('refused', name, e.errno)\n\
         class OpenHow(ctypes.Structure):\n\
         \x20   _fields_ = [('flags', ctypes.c_uint64), ('mode', ctypes.c_uint64), ('resolve', ctypes.c_uint64)]\n\
         how = OpenHow(os.O_CREAT | os.O_WRONLY, 0o4755, 0)\n\
         fd = libc.syscall(437, -100, b'by-openat2', ctypes.byref(how), ctypes.sizeof(how))\n\
         print('openat2', fd, ctypes.get_errno())\n",
    );
    let mut special = Vec::new();
    for entry in walk(&lab.worktree()) {
        let mode = std::fs::symlink_metadata(&entry).unwrap().mode();
        if mode & 0o6000 != 0 {
            special.push(format!("{} {:o}", entry.display(), mode));
        }
    }
    assert!(special.is_empty(), "the session left set-uid or set-gid files: {special:?}");
    // The twin: ordinary modes still work.
    assert_eq!(std::fs::metadata(lab.worktree().join("suid-id")).unwrap().permissions().mode() & 0o777, 0o755);
});

attack!(system_calls_of_another_abi_do_not_pass_the_filter, |lab| {
    let session = lab.session();
    // x32 numbers (bit 30) and 32-bit `int 0x80` calls would not match
    // rules written with x86_64 numbers; TIOCSTI would type into a terminal.
    let Some(out) = python(
        &lab,
        &session,
        "import ctypes, mmap, platform, fcntl, termios\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         try:\n\
         \x20   fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('TIOCSTI passed')\n\
         except OSError as e:\n\
         \x20   print('tiocsti', e.errno)\n\
         if platform.machine() != 'x86_64':\n\
         \x20   print('not x86_64'); raise SystemExit\n\
         for name, nr in [('unshare', 272), ('getpid', 39)]:\n\
         \x20   ctypes.set_errno(0)\n\
         \x20   print('x32', name, libc.syscall(0x40000000 | nr, 0x10000000), ctypes.get_errno(), flush=True)\n\
         # push rbx; mov eax, 310 (i386 unshare); mov ebx, CLONE_NEWUSER; int 0x80; pop rbx; ret\n\
         code = bytes([0x53, 0xB8, 0x36, 1, 0, 0, 0xBB, 0, 0, 0, 0x10, 0xCD, 0x80, 0x5B, 0xC3])\n\
         page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n\
         page.write(code)\n\
         call = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))\n\
         print('i386 unshare returned', call(), flush=True)\n",
    ) else {
        return;
    };
    let eperm = nix::errno::Errno::EPERM as i32;
    let eperm = eperm.to_string();
    assert!(out.stdout.contains(&format!("tiocsti {eperm}\n")), "TIOCSTI must be refused by the filter: {out:?}");
    if out.stdout.contains("not x86_64") {
        return;
    }
    for name in ["unshare", "getpid"] {
        // EPERM from the filter; a kernel without x32 alone would say ENOSYS.
        assert!(out.stdout.contains(&format!("x32 {name} -1 {eperm}\n")), "x32 {name} passed the filter: {out:?}");
    }
    // The architecture check kills a process that makes a 32-bit call.
    assert!(!out.stdout.contains("i386 unshare returned"), "a 32-bit system call ran: {out:?}");
});

attack!(limits_cannot_be_raised_from_inside, |lab| {
    let session = lab.session();
    let Some(out) = python(
        &lab,
        &session,
        "import resource as r, os\n\
         for name in ['RLIMIT_NOFILE', 'RLIMIT_FSIZE', 'RLIMIT_NPROC', 'RLIMIT_CORE', 'RLIMIT_AS']:\n\
         \x20   k = getattr(r, name)\n\
         \x20   soft, hard = r.getrlimit(k)\n\
         \x20   try:\n\
         \x20       r.setrlimit(k, (hard, hard))\n\
         \x20       raised = r.getrlimit(k)[0] != soft\n\
         \x20   except (ValueError, OSError):\n\
         \x20       raised = False\n\
         \x20   print('RAISED' if raised else 'kept', name, soft, hard)\n\
         \x20   # The worker's limits, which the next program would inherit.\n\
         \x20   try:\n\
         \x20       wsoft, whard = r.prlimit(1, k)\n\
         \x20       r.prlimit(1, k, (whard, whard))\n\
         \x20       print('RAISED-WORKER' if r.prlimit(1, k)[0] != wsoft else 'kept-worker', name)\n\
         \x20   except (ValueError, OSError) as e:\n\
         \x20       print('kept-worker', name, e)\n",
    ) else {
        return;
    };
    assert_eq!(out.stdout.matches("kept ").count(), 5, "{out:?}");
    assert_eq!(out.stdout.matches("kept-worker").count(), 5, "{out:?}");
    assert!(!out.stdout.contains("RAISED"), "{out:?}");
    // What the next program gets is still the session's cap.
    let out = lab.sh(&session, "ulimit -S -n 4096; ulimit -f unlimited; ulimit -n; ulimit -f");
    let caps: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(caps.len(), 2, "{out:?}");
    assert!(caps[0].parse::<u64>().unwrap() <= 1024, "open files: {out:?}");
    assert_ne!(caps[1], "unlimited", "file size: {out:?}");
});

attack!(programs_hold_no_descriptor_of_the_workers_channel, |lab| {
    let session = lab.session();
    // A program that held the worker's channel (or its stderr pipe) could
    // write forged frames to the daemon.
    // A plain program's descriptors, listed from outside it: the shell's
    // own would include the copies it keeps while setting up a pipe or a
    // redirection (seen as a flaky extra descriptor).
    let out = lab.sh(
        &session,
        "sleep 30 & pid=$!; sleep 0.2; ls -l /proc/$pid/fd/ > program-fds.txt; kill $pid; grep -- '->' program-fds.txt",
    );
    let held: Vec<&str> = out.stdout.lines().filter_map(|l| l.split_once(" -> ").map(|(head, _)| head)).collect();
    assert_eq!(held.len(), 3, "{out:?}");
    for (line, fd) in out.stdout.lines().zip(["0", "1", "2"]) {
        assert!(line.split(" -> ").next().unwrap().ends_with(&format!(" {fd}")), "the shell holds {line}: {out:?}");
        assert!(!line.contains("socket:"), "the shell holds a socket: {out:?}");
    }
});

attack!(a_worktree_that_holds_system_or_daemon_directories_is_refused, |lab| {
    // The daemon's own directory (its database, its library cache, its
    // secrets) or `/` handed over as a worktree: refused, not mounted
    // read-write, whoever asked.
    let name = format!("vm-sbx-pwned-{}", uuid::Uuid::new_v4().simple());
    let daemon_dir = lab.dir.path().canonicalize().unwrap();
    for worktree in [daemon_dir.as_path(), std::path::Path::new("/"), std::path::Path::new("/etc")] {
        let body = json!({ "template_id": lab.template, "workspace_id": "ws", "base_commit_oid": "c0ffee",
            "worktree_path": worktree.to_str().unwrap() });
        let (status, session) = lab.post("/sessions", body);
        assert_ne!(status, 201, "a session started on {}: {session}", worktree.display());
        lab.assert_no_marker(&session);
        assert!(!worktree.join(&name).exists(), "a session wrote into {}", worktree.display());
    }
    // The twin: the lab's worktree still starts.
    let session = lab.session();
    assert_eq!(lab.value(&session, "1 + 1"), 2);
});

attack!(a_worktree_swapped_for_a_symlink_while_its_session_starts_stays_itself, |lab| {
    // Whoever may write the worktree's parent (its owner, or a session on
    // a directory above it) swaps the worktree for a symlink to a secret
    // directory, back and forth, while sessions on it start.
    let parent = lab.worktree();
    let worktree = parent.join("nested");
    std::fs::create_dir(&worktree).unwrap();
    std::fs::write(worktree.join("own.txt"), "own\n").unwrap();
    let secret_dir = lab.path("outside").canonicalize().unwrap();
    let aside = parent.join("nested.aside");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (worktree, aside, secret_dir, stop) = (worktree.clone(), aside.clone(), secret_dir.clone(), stop.clone());
        std::thread::spawn(move || {
            // Stops at the first error too: the lab is gone when the test failed.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let swapped = std::fs::rename(&worktree, &aside)
                    .and_then(|()| std::os::unix::fs::symlink(&secret_dir, &worktree))
                    .map(|()| std::thread::sleep(Duration::from_micros(300)))
                    .and_then(|()| std::fs::remove_file(&worktree))
                    .and_then(|()| std::fs::rename(&aside, &worktree));
                if swapped.is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_millis(1200);
    let (mut started, mut refused) = (0, 0);
    while Instant::now() < deadline {
        let body = json!({ "template_id": lab.template, "workspace_id": "ws", "base_commit_oid": "c0ffee",
            "worktree_path": worktree.to_str().unwrap() });
        let (status, session) = lab.post("/sessions", body);
        if status != 201 {
            refused += 1;
            continue;
        }
        let id = session["id"].as_str().unwrap().to_owned();
        if session["worktree_path"].as_str() != Some(worktree.to_str().unwrap()) {
            // The daemon saw the symlink and resolved it: a session on the
            // directory it names, as asked.
            lab.close(&id);
            continue;
        }
        started += 1;
        let (_, answer) = lab.repl(&id, "require('exec').run('cat', ['secret.txt', 'own.txt']).stdout");
        lab.assert_no_marker(&answer);
        lab.close(&id);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("note: {started} sessions started on the worktree, {refused} refused");
    assert!(std::fs::read_to_string(lab.path("outside/secret.txt")).unwrap().starts_with("TOPSECRET"));
});

/// Every path beneath `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
