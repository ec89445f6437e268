//! Guarantee 3: no privilege. An allowed program is not a root shell: it
//! runs as an unprivileged user with no capabilities and `no_new_privs`,
//! set-uid bits mean nothing, and the kernel calls that would undo the
//! sandbox (namespaces, mounts, tracing) are refused.

use crate::harness::As;

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

attack!(a_git_alias_shell_has_no_privileges, |lab| {
    let session = lab.session();
    let value = lab.value(
        &session,
        "(() => { const r = require('exec').run('git', ['-c', 'alias.x=!id -u; cat /proc/self/status', 'x']); \
         return r.stdout; })()",
    );
    let text = value.as_str().unwrap();
    let uid: u32 = text.lines().next().unwrap().trim().parse().unwrap();
    assert_ne!(uid, 0, "the shell runs as root: {text}");
    if lab.who == As::Root {
        assert_eq!(uid, nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw());
    }
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(text, field), "0000000000000000", "{field}: {text}");
    }
    assert_eq!(status_field(text, "NoNewPrivs"), "1");
    assert_eq!(status_field(text, "Seccomp"), "2");
});

attack!(an_alias_in_the_worktrees_git_config_stays_inside, |lab| {
    let session = lab.session();
    let out = lab.sh(&session, "git init -q . && echo ok");
    assert_eq!(out.stdout.trim(), "ok", "{out:?}");
    let config = format!(
        "[alias]\n\tx = \"!cat '{}' '{}'; touch '{}'\"\n",
        lab.path("outside/secret.txt").display(),
        lab.path("vm.db").display(),
        lab.path("outside/pwned").display()
    );
    std::fs::write(lab.worktree().join(".git/config.extra"), &config).unwrap();
    let (status, answer) = lab.repl(
        &session,
        "const fs = require('fs'); fs.appendFileSync('.git/config', fs.readFileSync('.git/config.extra')); \
         require('exec').run('git', ['x'])",
    );
    assert_eq!(status, 201, "{answer}");
    lab.assert_no_marker(&answer);
    assert!(!lab.path("outside/pwned").exists());
});

attack!(namespaces_mounts_and_tracing_are_refused, |lab| {
    let session = lab.session();
    let script = r#"python3 - <<'PY'
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
calls = [
    ('unshare', lambda: libc.unshare(0x10000000)),
    ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
    ('ptrace', lambda: libc.ptrace(16, 1, 0, 0)),
    ('setuid', lambda: libc.setuid(0)),
    ('bpf', lambda: libc.syscall(321, 0, 0, 0)),
    ('keyctl', lambda: libc.syscall(250, 0, 0, 0, 0, 0)),
]
for name, call in calls:
    ctypes.set_errno(0)
    print(name, call(), ctypes.get_errno())
PY"#;
    let out = lab.sh(&session, script);
    if out.stderr.contains("not found") {
        eprintln!("note: python3 is missing; skipping the syscall probes");
        return;
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{out:?}");
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "-1", "{line} must fail");
        assert_ne!(fields[2], "0", "{line} must set errno");
    }
});

attack!(set_uid_programs_do_not_elevate, |lab| {
    let session = lab.session();
    let out = lab.sh(&session, "grep -E ' /usr ' /proc/self/mountinfo; stat -c '%A' /usr/bin/su /bin/su 2>/dev/null | head -1; su -c id root </dev/null 2>&1; id -u");
    let last = out.stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert_ne!(last, "0", "{out:?}");
    assert!(out.stdout.contains("nosuid"), "/usr is mounted nosuid: {out:?}");
});
