//! Issue 9: the session's code and worktree are hostile. `fs` and `database`
//! stay inside the worktree even when the worktree holds symlinks and hard
//! links to outside files, or swaps them in while a script reads. Each attack
//! asserts its documented code and that the outside file's marker never
//! reached an event (and nothing was created outside); each has a positive
//! twin. These hold with or without the kernel sandbox.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tempfile::TempDir;
use vm_domain::ports::Outcome;

use crate::harness::{json_of, with_modules, Harness};

/// What every outside file holds; it must never show up in an event.
const MARKER: &str = "OUTSIDE-SECRET-7f3a";

/// A directory outside the worktree holding `secret.txt` (the marker) and
/// `secret.db` (a table `s` whose one row is the marker).
struct Outside {
    dir: TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a directory outside the worktree");
        std::fs::write(dir.path().join("secret.txt"), MARKER).expect("the outside secret");
        let db = rusqlite::Connection::open(dir.path().join("secret.db")).expect("an outside database");
        db.execute_batch(&format!("CREATE TABLE s (v TEXT); INSERT INTO s VALUES ('{MARKER}');"))
            .expect("the outside table");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The outside directory's entries, to show nothing was added to it.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("the outside directory")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn assert_marker_never_shows(outcome: &Outcome, what: &str) {
    let text = format!("{outcome:?}");
    assert!(!text.contains(MARKER), "{what}: the outside marker reached an event: {text}");
}

/// Runs `source` in a `try`, returning `[e.code, e.message]` (or the value
/// when nothing was thrown), and checks the marker never showed.
async fn caught(h: &Harness, session: vm_domain::ids::SessionId, source: &str) -> Value {
    let outcome =
        h.eval(session, &format!("try {{ {source}; ['no error', 'none'] }} catch (e) {{ [e.code, e.message] }}")).await;
    assert_marker_never_shows(&outcome, source);
    json_of(&outcome)
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).expect("a symlink");
}

#[tokio::test]
async fn reading_a_name_while_a_symlink_to_an_outside_file_is_swapped_in_never_returns_the_outside_file() {
    let h = Harness::new();
    let outside = Outside::new();
    h.write("link", "inside");
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, root, secret) = (stop.clone(), swaps.clone(), h.root(), outside.path("secret.txt"));
        std::thread::spawn(move || {
            let (link, staged_link, staged_file) =
                (root.join("link"), root.join(".staged-link"), root.join(".staged-file"));
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&staged_link);
                symlink(&secret, &staged_link);
                std::fs::rename(&staged_link, &link).expect("the symlink swapped in");
                std::fs::write(&staged_file, "inside").expect("a staged file");
                std::fs::rename(&staged_file, &link).expect("the file swapped in");
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let script = r#"
        const fs = require('fs');
        const seen = { inside: 0, denied: 0, other: [] };
        for (let i = 0; i < 5000; i++) {
            try {
                const text = fs.readFileSync('link');
                if (text === 'inside') seen.inside++; else seen.other.push(text);
            } catch (e) {
                if (e.code === 'ERR_ACCESS_DENIED') seen.denied++; else seen.other.push(e.code);
            }
        }
        seen
    "#;
    let outcome = h.eval(s, script).await;
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("the swapping thread");

    assert_marker_never_shows(&outcome, "the swap race");
    let seen = json_of(&outcome);
    assert_eq!(seen["other"], json!([]), "every read saw the inside file or was refused: {seen}");
    assert_eq!(seen["inside"].as_u64().unwrap() + seen["denied"].as_u64().unwrap(), 5000, "{seen}");
    assert!(seen["denied"].as_u64().unwrap() > 0, "the symlink was never seen; the race did not run: {seen}");
    assert!(swaps.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn fs_refuses_paths_that_lead_outside_and_touches_nothing_there() {
    let h = Harness::new();
    let outside = Outside::new();
    let root = h.root();
    symlink(outside.path("secret.txt"), root.join("secret-link"));
    symlink(outside.dir.path(), root.join("escape"));
    symlink("../../", root.join("up"));
    symlink(outside.path("planted.txt"), root.join("dangling"));
    let before = outside.entries();
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let secret = outside.path("secret.txt");
    let secret = secret.display();
    let cases = [
        ("a symlink to an outside file", "require('fs').readFileSync('secret-link')".to_owned()),
        ("a symlinked outside directory", "require('fs').readFileSync('escape/secret.txt')".to_owned()),
        ("a relative symlink climbing out", "require('fs').readdirSync('up')".to_owned()),
        ("`..`", "require('fs').readFileSync('../secret.txt')".to_owned()),
        ("`..` below a missing directory", "require('fs').readFileSync('a/../../secret.txt')".to_owned()),
        ("an absolute path outside", format!("require('fs').readFileSync('{secret}')")),
        ("a stat through a symlink", "require('fs').statSync('secret-link')".to_owned()),
        ("existsSync through a symlink", "require('fs').existsSync('escape/secret.txt')".to_owned()),
        ("a listing of an outside directory", "require('fs').readdirSync('escape')".to_owned()),
        ("a write through a dangling symlink", "require('fs').writeFileSync('dangling', 'x')".to_owned()),
        ("a write into a symlinked directory", "require('fs').writeFileSync('escape/planted.txt', 'x')".to_owned()),
        ("an append through a symlink", "require('fs').appendFileSync('secret-link', 'x')".to_owned()),
        ("a mkdir in a symlinked directory", "require('fs').mkdirSync('escape/made')".to_owned()),
        (
            "a mkdir -p through a symlink",
            "require('fs').mkdirSync('escape/made/deeper', { recursive: true })".to_owned(),
        ),
        ("an unlink in a symlinked directory", "require('fs').unlinkSync('escape/secret.txt')".to_owned()),
    ];
    for (label, source) in cases {
        let result = caught(&h, s, &source).await;
        assert_eq!(result[0], "ERR_ACCESS_DENIED", "{label}: {result}");
        assert!(result[1].as_str().unwrap().contains("denied: "), "{label}: {result}");
    }
    assert_eq!(outside.entries(), before, "nothing was created or removed outside");
    assert_eq!(std::fs::read_to_string(outside.path("secret.txt")).unwrap(), MARKER, "the outside file is untouched");
}

#[tokio::test]
async fn fs_refuses_to_read_or_write_a_file_hard_linked_to_an_outside_file() {
    let h = Harness::new();
    let outside = Outside::new();
    std::fs::hard_link(outside.path("secret.txt"), h.root().join("hard.txt")).expect("a hard link across directories");
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let cases = [
        ("a read", "require('fs').readFileSync('hard.txt')"),
        ("a write", "require('fs').writeFileSync('hard.txt', 'overwritten')"),
        ("an append", "require('fs').appendFileSync('hard.txt', 'appended')"),
    ];
    for (label, source) in cases {
        let result = caught(&h, s, source).await;
        assert_eq!(result[0], "ERR_ACCESS_DENIED", "{label}: {result}");
        let message = result[1].as_str().unwrap();
        assert!(message.contains("has 2 hard links; a hard link can point outside the worktree"), "{label}: {message}");
    }
    assert_eq!(std::fs::read_to_string(outside.path("secret.txt")).unwrap(), MARKER, "neither written nor truncated");
}

#[tokio::test]
async fn fs_reads_writes_lists_and_removes_inside_the_worktree_through_inside_symlinks_too() {
    let h = Harness::new();
    h.write("notes/hello.txt", "hi there");
    let root = h.root();
    symlink("notes", root.join("alias"));
    symlink("notes/hello.txt", root.join("hello-link"));
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let absolute = root.join("notes/hello.txt");
    let cases = [
        ("a nested read", "fs.readFileSync('notes/hello.txt')".to_owned(), json!("hi there")),
        ("an absolute path inside", format!("fs.readFileSync('{}')", absolute.display()), json!("hi there")),
        ("a symlinked file inside", "fs.readFileSync('hello-link')".to_owned(), json!("hi there")),
        ("a symlinked directory inside", "fs.readFileSync('alias/hello.txt')".to_owned(), json!("hi there")),
        (
            "write then append",
            "fs.writeFileSync('out.txt', 'abc'); fs.writeFileSync('out.txt', 'a'); fs.appendFileSync('out.txt', 'b'); \
             fs.readFileSync('out.txt')"
                .to_owned(),
            json!("ab"),
        ),
        (
            "a write through an inside symlink",
            "fs.writeFileSync('alias/new.txt', 'n'); fs.readFileSync('notes/new.txt')".to_owned(),
            json!("n"),
        ),
        (
            "mkdir -p",
            "fs.mkdirSync('deep/er/dir', { recursive: true }); fs.statSync('deep/er/dir').isDirectory()".to_owned(),
            json!(true),
        ),
        (
            "mkdir -p again",
            "fs.mkdirSync('deep/er/dir', { recursive: true }); fs.existsSync('deep/er')".to_owned(),
            json!(true),
        ),
        ("mkdir", "fs.mkdirSync('deep/other'); fs.readdirSync('deep')".to_owned(), json!(["er", "other"])),
        ("a listing", "fs.readdirSync('notes')".to_owned(), json!(["hello.txt", "new.txt"])),
        (
            "a listing of the worktree",
            "fs.readdirSync('.')".to_owned(),
            json!(["alias", "deep", "hello-link", "notes", "out.txt"]),
        ),
        (
            "a stat",
            "const st = fs.statSync('alias/hello.txt'); [st.size, st.isFile(), st.isDirectory()]".to_owned(),
            json!([8, true, false]),
        ),
        ("an unlink", "fs.unlinkSync('out.txt'); fs.existsSync('out.txt')".to_owned(), json!(false)),
        (
            "an unlink of a symlink",
            "fs.unlinkSync('hello-link'); [fs.existsSync('hello-link'), fs.existsSync('notes/hello.txt')]".to_owned(),
            json!([false, true]),
        ),
    ];
    for (label, source, expected) in cases {
        let outcome = h.eval(s, &format!("{{ const fs = require('fs'); {source} }}")).await;
        assert_eq!(json_of(&outcome), expected, "{label}: {source}");
    }
    assert!(root.join("deep/er/dir").is_dir());
    assert_eq!(std::fs::read_to_string(root.join("notes/hello.txt")).unwrap(), "hi there");
}

#[tokio::test]
async fn fs_keeps_node_codes_for_ordinary_errors() {
    let h = Harness::new();
    h.write("file.txt", "x");
    let s = h.session_with(|spec| with_modules(spec, &["fs"])).await;
    let cases = [
        ("a missing file", "require('fs').readFileSync('missing.txt')", "ENOENT"),
        ("a missing directory", "require('fs').readdirSync('missing')", "ENOENT"),
        ("a directory read as a file", "require('fs').mkdirSync('d'); require('fs').readFileSync('d')", "EISDIR"),
        ("an existing directory", "require('fs').mkdirSync('d')", "EEXIST"),
        ("a file used as a directory", "require('fs').readFileSync('file.txt/x')", "ENOTDIR"),
        ("a missing parent", "require('fs').mkdirSync('no/such')", "ENOENT"),
        ("an unlink of a missing file", "require('fs').unlinkSync('missing.txt')", "ENOENT"),
    ];
    for (label, source, code) in cases {
        let result = caught(&h, s, source).await;
        assert_eq!(result[0], code, "{label}: {result}");
        assert!(result[1].as_str().unwrap().starts_with(code), "{label}: {result}");
    }
}

#[tokio::test]
async fn database_refuses_attach_and_detach_and_reads_nothing_from_the_attached_file() {
    let h = Harness::new();
    let outside = Outside::new();
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let attach = format!("ATTACH DATABASE '{}' AS d", outside.path("secret.db").display());
    for target in ["':memory:'", "'app.db'"] {
        let cases = [
            (
                "ATTACH by exec",
                format!("db.exec(\"{attach}\")"),
                "ATTACH is not allowed (nor VACUUM INTO, which attaches its target): a session's database stays inside its \
                 worktree",
            ),
            ("ATTACH by query", format!("db.query(\"{attach}\")"), "ATTACH is not allowed"),
            (
                "ATTACH in a batch",
                format!("db.exec(\"SELECT 1; {attach}; SELECT * FROM d.s\")"),
                "ATTACH is not allowed",
            ),
            ("DETACH", "db.exec('DETACH DATABASE main')".to_owned(), "DETACH is not allowed"),
        ];
        for (label, source, expected) in cases {
            let source = format!("const db = require('database'); db.configure({target}); {source}");
            let result = caught(&h, s, &source).await;
            assert_eq!(result[0], "ERR_ACCESS_DENIED", "{label} on {target}: {result}");
            assert!(result[1].as_str().unwrap().contains(expected), "{label} on {target}: {result}");
        }
        let read = caught(&h, s, "require('database').query('SELECT v FROM d.s')").await;
        assert_eq!(read[0], "ERR_SQLITE", "nothing was attached: {read}");
    }
}

#[tokio::test]
async fn database_refuses_vacuum_into_a_path_outside_and_creates_no_file() {
    let h = Harness::new();
    let outside = Outside::new();
    let before = outside.entries();
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let copy = outside.path("copy.db");
    for target in ["':memory:'", "'app.db'"] {
        let source = format!(
            "const db = require('database'); db.configure({target}); db.exec('CREATE TABLE IF NOT EXISTS t (v)'); \
             db.exec(\"VACUUM INTO '{}'\")",
            copy.display()
        );
        let result = caught(&h, s, &source).await;
        assert_eq!(result[0], "ERR_ACCESS_DENIED", "{target}: {result}");
        assert!(result[1].as_str().unwrap().contains("VACUUM INTO"), "{target}: {result}");
    }
    assert!(!copy.exists(), "VACUUM INTO wrote outside the worktree");
    assert_eq!(outside.entries(), before);
}

#[tokio::test]
async fn database_refuses_load_extension_and_pragmas_that_reach_files_or_internals() {
    let h = Harness::new();
    let outside = Outside::new();
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let library = outside.path("evil.so");
    let cases = [
        (
            "load_extension",
            format!("db.query(\"SELECT load_extension('{}')\")", library.display()),
            "load_extension is not allowed",
        ),
        (
            "temp_store_directory",
            "db.exec(\"PRAGMA temp_store_directory = '/tmp'\")".to_owned(),
            "PRAGMA temp_store_directory is not allowed",
        ),
        (
            "reading temp_store_directory",
            "db.query('PRAGMA temp_store_directory')".to_owned(),
            "PRAGMA temp_store_directory is not allowed",
        ),
        (
            "data_store_directory",
            "db.exec(\"PRAGMA data_store_directory = '/tmp'\")".to_owned(),
            "PRAGMA data_store_directory is not allowed",
        ),
        (
            "writable_schema",
            "db.exec('PRAGMA writable_schema = ON')".to_owned(),
            "PRAGMA writable_schema is not allowed",
        ),
        ("trusted_schema", "db.exec('PRAGMA trusted_schema = ON')".to_owned(), "PRAGMA trusted_schema is not allowed"),
        ("temp_store", "db.exec('PRAGMA temp_store = FILE')".to_owned(), "PRAGMA temp_store is not allowed"),
        ("mmap_size", "db.exec('PRAGMA mmap_size = 1000000')".to_owned(), "PRAGMA mmap_size is not allowed"),
        (
            "an unknown journal mode",
            "db.exec(\"PRAGMA journal_mode = 'elsewhere'\")".to_owned(),
            "PRAGMA journal_mode = elsewhere is not allowed",
        ),
    ];
    for (label, source, expected) in cases {
        let source = format!("const db = require('database'); db.configure('app.db'); {source}");
        let result = caught(&h, s, &source).await;
        assert_eq!(result[0], "ERR_ACCESS_DENIED", "{label}: {result}");
        assert!(result[1].as_str().unwrap().contains(expected), "{label}: {result}");
    }
}

#[tokio::test]
async fn database_refuses_to_open_a_file_that_leads_outside_and_leaves_it_untouched() {
    let h = Harness::new();
    let outside = Outside::new();
    let root = h.root();
    symlink(outside.path("secret.db"), root.join("link.db"));
    symlink(outside.dir.path(), root.join("escape"));
    symlink(outside.path("fresh.db"), root.join("dangling.db"));
    std::fs::hard_link(outside.path("secret.db"), root.join("hard.db")).expect("a hard link");
    std::fs::write(root.join("journaled.db"), "").unwrap();
    std::fs::hard_link(outside.path("secret.txt"), root.join("journaled.db-journal")).expect("a hard link");
    let before = std::fs::read(outside.path("secret.db")).unwrap();
    let entries = outside.entries();
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let absolute = outside.path("secret.db");
    let cases = [
        ("a symlink to an outside database", "link.db".to_owned(), "is a symlink"),
        ("a dangling symlink", "dangling.db".to_owned(), "is a symlink"),
        ("a symlinked outside directory", "escape/secret.db".to_owned(), "leads outside the worktree"),
        ("a hard link to an outside database", "hard.db".to_owned(), "has 2 hard links"),
        ("a journal hard-linked outside", "journaled.db".to_owned(), "'journaled.db-journal' has 2 hard links"),
        ("`..`", "../secret.db".to_owned(), "leaves the worktree"),
        ("an absolute path outside", absolute.display().to_string(), "absolute paths must lie inside the worktree"),
        ("the worktree itself", ".".to_owned(), "names the worktree itself"),
    ];
    for (label, path, expected) in cases {
        let source = format!("const db = require('database'); db.configure('{path}'); db.query('SELECT v FROM s')");
        let result = caught(&h, s, &source).await;
        assert_eq!(result[0], "ERR_ACCESS_DENIED", "{label}: {result}");
        let message = result[1].as_str().unwrap();
        assert!(message.starts_with(&format!("database.configure: access to '{path}' denied: ")), "{label}: {message}");
        assert!(message.contains(expected), "{label}: {message}");
    }
    assert_eq!(std::fs::read(outside.path("secret.db")).unwrap(), before, "the outside database is untouched");
    assert_eq!(outside.entries(), entries, "no journal or new database outside");
    assert_eq!(std::fs::read_to_string(outside.path("secret.txt")).unwrap(), MARKER);
}

#[tokio::test]
async fn database_in_a_subdirectory_works_with_its_wal_beside_it_and_with_ordinary_pragmas() {
    let h = Harness::new();
    std::fs::create_dir_all(h.root().join("data/sub")).unwrap();
    symlink("data", h.root().join("alias"));
    let s = h.session_with(|spec| with_modules(spec, &["database"])).await;
    let script = r#"{
        const db = require('database');
        const opened = db.configure('data/sub/app.db');
        const mode = db.query('PRAGMA journal_mode = WAL');
        db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
        db.exec('CREATE INDEX t_name ON t (name)');
        db.exec('INSERT INTO t (name) VALUES (?)', ['ada']);
        db.exec('PRAGMA user_version = 3');
        db.exec('PRAGMA foreign_keys = ON');
        [
            opened,
            mode,
            db.query('PRAGMA table_info(t)').map(c => c.name),
            db.query('PRAGMA index_list(t)').map(i => i.name),
            db.query('PRAGMA user_version'),
            db.query('PRAGMA integrity_check'),
            db.query('SELECT name FROM t'),
            db.query('SELECT count(*) AS n FROM sqlite_master'),
        ]
    }"#;
    let outcome = h.eval(s, script).await;
    assert_eq!(
        json_of(&outcome),
        json!([
            { "path": "data/sub/app.db" },
            [{ "journal_mode": "wal" }],
            ["id", "name"],
            ["t_name"],
            [{ "user_version": 3 }],
            [{ "integrity_check": "ok" }],
            [{ "name": "ada" }],
            [{ "n": 2 }]
        ])
    );
    assert!(h.root().join("data/sub/app.db").is_file());
    assert!(h.root().join("data/sub/app.db-wal").is_file(), "the WAL lands beside the database");
    let again =
        "{ const db = require('database'); [db.configure('alias/sub/app.db'), db.query('SELECT name FROM t')] }";
    assert_eq!(json_of(&h.eval(s, again).await), json!([{ "path": "alias/sub/app.db" }, [{ "name": "ada" }]]));
}
