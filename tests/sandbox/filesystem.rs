//! Guarantee 1 and 6: a session writes only inside its worktree and reads
//! only it and the documented system paths; other sessions' worktrees, the
//! daemon's files, `/tmp`, `/home` and `/root` are out of reach, even for a
//! shell, and the daemon's environment is invisible.

use std::os::unix::fs::MetadataExt;

attack!(a_shell_cannot_read_the_daemons_files_or_other_worktrees, |lab| {
    let session = lab.session();
    let targets = [
        lab.path("vm.db"),
        lab.path("daemon.log"),
        lab.path("outside/secret.txt"),
        lab.path("other-worktree/state.txt"),
        lab.host_tmp_file.clone(),
    ];
    for target in &targets {
        let out = lab.sh(&session, &format!("cat '{}'", target.display()));
        assert_ne!(out.code, 0, "reading {} must fail: {out:?}", target.display());
        assert!(!out.stdout.contains(&lab.marker));
    }
    let out = lab.sh(&session, "ls / /tmp /root /home /etc 2>&1; cat /etc/shadow /etc/hostname 2>&1; echo done");
    assert!(out.stdout.contains("done"), "{out:?}");
    let tmp_name = lab.host_tmp_file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!out.stdout.contains(&tmp_name), "the host's /tmp is visible: {out:?}");
    assert!(!out.stdout.contains("root:"), "the host's account files are visible: {out:?}");
});

attack!(a_shell_cannot_write_outside_the_worktree, |lab| {
    let session = lab.session();
    let outside = lab.path("outside/pwned");
    let script = format!(
        "echo x > '{}'; echo x > /tmp/vm-sbx-pwned; echo x > /pwned; mkdir /usr/pwned; echo x >> /etc/passwd; \
         echo x > '{}'; echo done",
        outside.display(),
        lab.path("vm.db").display()
    );
    let out = lab.sh(&session, &script);
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(!outside.exists(), "a file was written outside the worktree");
    assert!(!std::path::Path::new("/tmp/vm-sbx-pwned").exists());
    assert!(!std::path::Path::new("/pwned").exists());
    assert!(!std::path::Path::new("/usr/pwned").exists());
    let (status, _) = lab.get("/health");
    assert_eq!(status, 200, "the daemon's database was damaged");
    // The twin: inside the worktree, writing works.
    let out = lab.sh(&session, "echo inside > made-by-shell.txt && cat made-by-shell.txt");
    assert_eq!(out.stdout, "inside\n", "{out:?}");
});

attack!(a_session_works_on_a_worktree_its_owner_keeps, |lab| {
    // The worktree lives under a directory only the daemon's user may enter
    // (mode 0700), and is owned by that user with ordinary permissions.
    let worktree = lab.worktree();
    let before = std::fs::metadata(worktree.join("hello.txt")).unwrap();
    let session = lab.session();
    let out =
        lab.sh(&session, "cat hello.txt && echo more >> hello.txt && mkdir -p a/b && echo new > a/b/new.txt && ls -a");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("hello from the worktree"), "{out:?}");
    let value = lab.value(&session, "require('fs').readFileSync('a/b/new.txt')");
    assert_eq!(value, "new\n");
    let after = std::fs::metadata(worktree.join("hello.txt")).unwrap();
    assert_eq!((after.uid(), after.gid(), after.mode()), (before.uid(), before.gid(), before.mode()));
    let made = std::fs::metadata(worktree.join("a/b/new.txt")).unwrap();
    let dir_owner = std::fs::metadata(&worktree).unwrap().uid();
    assert_eq!(made.uid(), dir_owner, "what a session writes belongs to the worktree's owner");
    assert_eq!(std::fs::read_to_string(worktree.join("hello.txt")).unwrap(), "hello from the worktree\nmore\n");
});

attack!(the_daemons_environment_and_other_processes_are_invisible, |lab| {
    let session = lab.session();
    let out = lab.sh(&session, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; ls /proc");
    assert!(!out.stdout.contains(&lab.marker), "{out:?}");
    assert!(!out.stdout.contains("VM_SBX_DAEMON_SECRET"), "{out:?}");
    let pids: Vec<u32> = out.stdout.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(pids.iter().all(|&pid| pid < 100), "pids outside the session are visible: {pids:?}");
    assert!(!pids.contains(&lab.daemon_pid()) || lab.daemon_pid() < 100);
    let value = lab.value(&session, "typeof process");
    assert_eq!(value, "undefined");
});

attack!(another_sessions_state_is_out_of_reach, |lab| {
    let other = lab.path("other-worktree").canonicalize().unwrap();
    let first = lab.session_on(&other);
    lab.value(&first, "globalThis.secretState = 'kept'; 1");
    let second = lab.session();
    let out = lab.sh(&second, &format!("cat '{}/state.txt'; ls /proc/*/root/ 2>&1; echo done", other.display()));
    assert!(out.stdout.contains("done"));
    assert!(!out.stdout.contains(&lab.marker), "{out:?}");
    assert_eq!(lab.value(&second, "typeof globalThis.secretState"), "undefined");
});

attack!(descriptors_the_daemon_inherited_never_reach_a_session, |lab| {
    let session = lab.session();
    lab.value(&session, "1 + 1");
    let workers = lab.worker_pids();
    let keepers = lab.keeper_pids();
    assert!(workers.len() > keepers.len(), "the session's keeper and live worker are found: {workers:?}");
    if !crate::harness::is_root() {
        eprintln!("note: not root, so the worker's descriptors cannot be listed from outside");
        return;
    }
    for pid in workers {
        // A checkpoint replaced since the listing is gone.
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        let fds: Vec<String> = entries
            .flatten()
            .map(|e| {
                format!(
                    "{} -> {}",
                    e.file_name().to_string_lossy(),
                    std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default()
                )
            })
            .collect();
        let keeper = keepers.contains(&pid);
        for fd in &fds {
            // The session's /dev/null, seen from the host, is "/null" of its mount.
            let allowed = (fd.starts_with("0 -> ") && fd.ends_with("/null"))
                || (fd.starts_with("1 -> ") && fd.ends_with("/null"))
                || (fd.starts_with("2 -> ") && fd.contains("pipe:"))
                || fd.contains("socket:[")
                || fd.ends_with(&lab.worktree().display().to_string())
                // The keeper's watch on its children; a live worker's (or
                // checkpoint's) pipe to its checkpoint (or live worker).
                || (keeper && fd.ends_with("anon_inode:[signalfd]"))
                || (!keeper && fd.contains("pipe:"));
            assert!(allowed, "the worker holds {fd}; all: {fds:?}");
        }
        // A live worker: stdin, stdout, stderr, its channel and the copies
        // the console and fetch's link hold, the worktree and its
        // checkpoint's pipe.
        assert!(fds.len() <= 8, "{fds:?}");
    }
});
