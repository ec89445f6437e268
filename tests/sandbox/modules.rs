//! The attacks of issue 9 through the native modules and `import`: each is
//! refused with its documented error and reads or writes nothing outside.

use serde_json::Value;

use crate::harness::Lab;

#[track_caller]
fn thrown(lab: &Lab, session: &str, input: &str) -> Value {
    let (status, body) = lab.repl(session, input);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "error", "{input} must throw: {body}");
    lab.assert_no_marker(&body);
    body
}

attack!(the_database_module_cannot_attach_or_vacuum_into_outside_files, |lab| {
    let session = lab.session();
    let db = lab.path("vm.db");
    lab.value(&session, "const db = require('database'); db.configure('data.db'); 1");
    thrown(&lab, &session, &format!("db.query(\"ATTACH DATABASE '{}' AS d\")", db.display()));
    let target = lab.path("outside/copy.db");
    thrown(&lab, &session, &format!("db.exec(\"VACUUM INTO '{}'\")", target.display()));
    assert!(!target.exists());
    assert_eq!(lab.value(&session, "db.exec('CREATE TABLE t (x)'); db.query('SELECT 1 AS one')[0].one"), 1);
});

attack!(exec_environment_cannot_redirect_programs, |lab| {
    let session = lab.session();
    std::fs::write(lab.worktree().join("cat"), "#!/bin/sh\necho PLANTED\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(lab.worktree().join("cat")).unwrap().permissions(),
        0o755,
    );
    for env in ["{ PATH: '.' }", "{ LD_PRELOAD: './evil.so' }", "{ GIT_CONFIG_GLOBAL: './x' }", "{ SOMETHING: '1' }"] {
        let body = thrown(&lab, &session, &format!("require('exec').run('cat', ['hello.txt'], {{ env: {env} }})"));
        assert!(body["error"]["message"].as_str().unwrap().contains("exec.run: env:"), "{body}");
    }
    let out =
        lab.value(&session, "require('exec').run('cat', ['hello.txt'], { cwd: '.', env: { LAB_FLAG: '1' } }).stdout");
    assert_eq!(out, "hello from the worktree\n", "the system cat ran, not the planted one");
});

attack!(allowed_programs_cannot_reach_outside_through_their_arguments, |lab| {
    let session = lab.session();
    let secret = lab.path("outside/secret.txt");
    let written = lab.path("outside/diff-output");
    let (status, body) = lab.repl(
        &session,
        &format!(
            "const x = require('exec'); [x.run('git', ['diff', '--no-index', '/dev/null', '{}']), \
             x.run('git', ['diff', '--no-index', '--output={}', '/dev/null', 'hello.txt'])]",
            secret.display(),
            written.display()
        ),
    );
    assert_eq!(status, 201, "{body}");
    lab.assert_no_marker(&body);
    assert!(!written.exists(), "git wrote outside the worktree");
});

attack!(fs_cannot_follow_links_out_of_the_worktree, |lab| {
    let worktree = lab.worktree();
    std::os::unix::fs::symlink(lab.path("vm.db"), worktree.join("db-link")).unwrap();
    std::fs::hard_link(lab.path("outside/secret.txt"), worktree.join("hard-link")).unwrap();
    let session = lab.session();
    for input in [
        "require('fs').readFileSync('db-link')",
        "require('fs').readFileSync('hard-link')",
        "require('fs').writeFileSync('hard-link', 'x')",
        "require('fs').readFileSync('../outside/secret.txt')",
    ] {
        let body = thrown(&lab, &session, input);
        assert!(body["error"]["message"].as_str().unwrap().contains("denied"), "{input}: {body}");
    }
    assert!(std::fs::read_to_string(lab.path("outside/secret.txt")).unwrap().starts_with("TOPSECRET"));
});

attack!(import_reaches_nothing_outside_the_worktree, |lab| {
    let session = lab.session();
    std::fs::write(lab.path("leak.mjs"), format!("export default '{}';", lab.marker)).unwrap();
    for input in
        ["import('./leak.mjs')", "import('../leak.mjs')", &format!("import('{}')", lab.path("leak.mjs").display())]
    {
        let (status, body) =
            lab.repl(&session, &format!("let out; {input}.then(m => out = m.default, e => out = String(e)); out"));
        assert_eq!(status, 201, "{body}");
        lab.assert_no_marker(&body);
    }
});

attack!(the_worker_is_out_of_reach_of_the_programs_it_runs, |lab| {
    let session = lab.session();
    // The worker is PID 1 of the session and undumpable: its memory and its
    // channel to the daemon cannot be opened by a program it started.
    let out =
        lab.sh(&session, "ls /proc/1/fd/ 2>&1; head -c 16 /proc/1/mem 2>&1; echo x > /proc/1/fd/2 2>&1; echo done");
    assert!(out.stdout.contains("done"), "{out:?}");
    let denied = out.stdout.matches("Permission denied").count() + out.stderr.matches("Permission denied").count();
    assert_eq!(denied, 3, "{out:?}");
});
