//! Native modules behind `require`: `fs` confined to the worktree, `exec`
//! limited to allowed programs, `database` on SQLite; every refusal is a
//! JavaScript exception that says why.

use serde_json::json;
use vm_domain::event::EventPayload;
use vm_domain::ports::{Ending, LimitHit, StateAfter};

use crate::harness::{exception, exec_capability, json_of, with_modules, Harness};

#[tokio::test]
async fn require_refuses_modules_the_template_did_not_enable() {
    let h = Harness::new();
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let cases = [
        ("require('exec')", "module \"exec\" is not enabled for this template"),
        ("require('lodash')", "module \"lodash\" is not enabled for this template"),
    ];
    for (source, expected) in cases {
        let (message, _) = exception(&h.eval(s, source).await);
        assert!(message.starts_with(&format!("Error: {expected}")), "{source}: {message}");
    }
    let outcome = h.eval(s, "try { require('exec') } catch (e) { e.code }").await;
    assert_eq!(json_of(&outcome), json!("ERR_MODULE_NOT_ENABLED"));
    assert_eq!(json_of(&h.eval(s, "require('fs') === require('fs')").await), json!(true));
}

#[tokio::test]
async fn fs_reads_writes_and_lists_inside_the_worktree() {
    let h = Harness::new();
    h.write("notes/hello.txt", "hi there");
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let cases = [
        ("require('fs').readFileSync('notes/hello.txt')", json!("hi there")),
        ("require('fs').readFileSync('./notes/../notes/hello.txt', 'utf8')", json!("hi there")),
        ("const fs = require('fs'); fs.writeFileSync('out.txt', 'a'); fs.appendFileSync('out.txt', 'b'); fs.readFileSync('out.txt')", json!("ab")),
        ("require('fs').existsSync('nothing.txt')", json!(false)),
        ("require('fs').mkdirSync('deep/er/dir', { recursive: true }); require('fs').existsSync('deep/er/dir')", json!(true)),
        ("require('fs').readdirSync('.')", json!(["deep", "notes", "out.txt"])),
        ("require('fs').readdirSync()", json!(["deep", "notes", "out.txt"])),
        ("const st = require('fs').statSync('notes/hello.txt'); [st.size, st.isFile(), st.isDirectory()]", json!([8, true, false])),
        ("require('fs').unlinkSync('out.txt'); require('fs').existsSync('out.txt')", json!(false)),
    ];
    for (source, expected) in cases {
        assert_eq!(json_of(&h.eval(s, source).await), expected, "{source}");
    }
    assert_eq!(std::fs::read_to_string(h.root().join("notes/hello.txt")).unwrap(), "hi there");
}

#[tokio::test]
async fn fs_refuses_paths_that_leave_the_worktree() {
    let h = Harness::new();
    let outside = tempfile::tempdir().expect("a directory outside");
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), h.root().join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), h.root().join("secret-link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("new.txt"), h.root().join("dangling")).unwrap();
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let cases = [
        "require('fs').readFileSync('../secret.txt')",
        "require('fs').readFileSync('a/../../secret.txt')",
        "require('fs').readFileSync('/etc/passwd')",
        "require('fs').readFileSync('escape/secret.txt')",
        "require('fs').readFileSync('secret-link')",
        "require('fs').writeFileSync('escape/planted.txt', 'x')",
        "require('fs').writeFileSync('dangling', 'x')",
        "require('fs').readdirSync('escape')",
        "require('fs').mkdirSync('escape/sub')",
        "require('fs').existsSync('../')",
    ];
    for source in cases {
        let (message, _) = exception(&h.eval(s, source).await);
        assert!(message.contains("denied"), "{source}: {message}");
        let code = h.eval(s, &format!("try {{ {source} }} catch (e) {{ e.code }}")).await;
        assert_eq!(json_of(&code), json!("ERR_ACCESS_DENIED"), "{source}");
    }
    assert!(!outside.path().join("planted.txt").exists());
    assert!(!outside.path().join("new.txt").exists());
    assert!(!outside.path().join("sub").exists());
}

#[tokio::test]
async fn fs_errors_carry_node_codes() {
    let h = Harness::new();
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let cases = [
        ("require('fs').readFileSync('missing.txt')", "ENOENT"),
        ("require('fs').mkdirSync('a'); require('fs').mkdirSync('a')", "EEXIST"),
    ];
    for (source, code) in cases {
        let caught = h.eval(s, &format!("try {{ {source} }} catch (e) {{ [e.code, e.message] }}")).await;
        let caught = json_of(&caught);
        assert_eq!(caught[0], code, "{source}");
        assert!(caught[1].as_str().unwrap().starts_with(code), "{caught}");
    }
    let (message, _) = exception(&h.eval(s, "require('fs').writeFileSync('x.txt', 42)").await);
    assert!(message.starts_with("TypeError: fs.writeFileSync: the data must be a string"), "{message}");
}

#[tokio::test]
async fn exec_runs_an_allowed_program_without_a_shell() {
    let h = Harness::new();
    h.write("a.txt", "");
    let s = h
        .session_with(|spec| {
            with_modules(spec, &["exec"]);
            spec.capabilities = vec![exec_capability(&["echo", "ls", "sh"])];
        })
        .await;
    let outcome = h.eval(s, "require('exec').run('echo', ['$HOME', '; rm -rf /', '`id`'])").await;
    let result = json_of(&outcome);
    assert_eq!(result, json!({ "code": 0, "signal": null, "stdout": "$HOME ; rm -rf / `id`\n", "stderr": "" }));
    assert_eq!(outcome.events[0], EventPayload::Stdout { text: "$HOME ; rm -rf / `id`\n".into() });
    let listed = h.eval(s, "require('exec').run('ls').stdout").await;
    assert_eq!(json_of(&listed), json!("a.txt\n"), "programs run in the worktree");
    let failing = h.eval(s, "require('exec').run('sh', ['-c', 'echo oops >&2; exit 3'])").await;
    assert_eq!(json_of(&failing), json!({ "code": 3, "signal": null, "stdout": "", "stderr": "oops\n" }));
    assert_eq!(failing.events[0], EventPayload::Stderr { text: "oops\n".into() });
    assert_eq!(json_of(&h.eval(s, "require('exec').allowed").await), json!(["echo", "ls", "sh"]));
}

#[tokio::test]
async fn exec_refuses_programs_that_are_not_allowed() {
    let h = Harness::new();
    let s = h
        .session_with(|spec| {
            with_modules(spec, &["exec"]);
            spec.capabilities = vec![exec_capability(&["ls"])];
        })
        .await;
    for source in
        ["require('exec').run('cat', ['/etc/passwd'])", "require('exec').run('/bin/ls')", "require('exec').run('sh')"]
    {
        let (message, _) = exception(&h.eval(s, source).await);
        assert!(message.contains("is not allowed; allowed programs: ls"), "{source}: {message}");
    }
    let outcome = h.eval(s, "try { require('exec').run('ls', [], { cwd: '..' }) } catch (e) { e.code }").await;
    assert_eq!(json_of(&outcome), json!("ERR_ACCESS_DENIED"));
}

#[tokio::test]
async fn exec_without_an_allow_list_allows_nothing() {
    let h = Harness::new();
    let s = h.session_with(|spec| with_modules(spec, &["exec"])).await;
    let (message, _) = exception(&h.eval(s, "require('exec').run('ls')").await);
    assert!(message.contains("allowed programs: none"), "{message}");
}

#[tokio::test]
async fn exec_kills_a_program_at_its_timeout_and_output_counts_against_the_limits() {
    let h = Harness::new();
    let s = h
        .session_with(|spec| {
            with_modules(spec, &["exec"]);
            spec.capabilities = vec![exec_capability(&["sleep", "head"])];
            spec.settings.limits.max_output_kb = 1;
        })
        .await;
    let started = std::time::Instant::now();
    let outcome =
        h.eval(s, "try { require('exec').run('sleep', ['5'], { timeout_ms: 200 }) } catch (e) { e.code }").await;
    assert_eq!(json_of(&outcome), json!("ETIMEDOUT"));
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
    let flood = h.eval(s, "require('exec').run('head', ['-c', '100000', '/dev/zero'])").await;
    assert_eq!(flood.ending, Ending::Limit { hit: LimitHit::Output { max_output_kb: 1 }, state: StateAfter::Kept });
}

#[tokio::test]
async fn database_configures_queries_executes_and_closes() {
    let h = Harness::new();
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let script = r#"
        const db = require('database');
        db.configure('data/app.db');
        db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, extra BLOB)');
        const a = db.exec('INSERT INTO t (name, score) VALUES (?, ?)', ['ada', 1.5]);
        const b = db.exec('INSERT INTO t (name, score) VALUES (:name, :score)', { name: 'bob', score: null });
        const rows = db.query('SELECT id, name, score FROM t ORDER BY id');
        const one = db.query('SELECT count(*) AS n FROM t WHERE name = ?', ['ada']);
        [a, b, rows, one, db.close(), db.close()]
    "#;
    std::fs::create_dir_all(h.root().join("data")).unwrap();
    let outcome = h.eval(s, script).await;
    assert_eq!(
        json_of(&outcome),
        json!([
            { "changes": 1, "lastInsertRowid": 1 },
            { "changes": 1, "lastInsertRowid": 2 },
            [{ "id": 1, "name": "ada", "score": 1.5 }, { "id": 2, "name": "bob", "score": null }],
            [{ "n": 1 }],
            true,
            false
        ])
    );
    assert!(h.root().join("data/app.db").is_file(), "the database file lives in the worktree");
    let memory = "db.configure(':memory:'); \
                  db.exec('CREATE TABLE k (v); INSERT INTO k VALUES (1); INSERT INTO k VALUES (2)').changes";
    assert_eq!(json_of(&h.eval(s, memory).await), json!(2));
}

#[tokio::test]
async fn database_refusals_are_exceptions_that_say_why() {
    let h = Harness::new();
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let cases = [
        ("require('database').query('SELECT 1')", "ERR_NO_DATABASE"),
        ("require('database').configure('../outside.db')", "ERR_ACCESS_DENIED"),
        ("require('database').configure('/tmp/outside.db')", "ERR_ACCESS_DENIED"),
        ("const db = require('database'); db.configure(':memory:'); db.query('SELEC nonsense')", "ERR_SQLITE"),
    ];
    for (source, code) in cases {
        let caught = h.eval(s, &format!("try {{ {source} }} catch (e) {{ [e.code, e.message] }}")).await;
        let caught = json_of(&caught);
        assert_eq!(caught[0], code, "{source}: {caught}");
        assert!(caught[1].as_str().unwrap().starts_with("database."), "{caught}");
    }
}
