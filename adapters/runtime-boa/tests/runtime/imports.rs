//! `import()` from the REPL (issue 9): nothing loads unless the template
//! turns ES modules on; then specifiers resolve inside the worktree and the
//! resolver roots only, and every refusal names the specifier and its rule.
//! Every attack also checks that the outside file's content never shows.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tempfile::{NamedTempFile, TempDir};
use vm_domain::event::EventPayload;
use vm_domain::ids::SessionId;
use vm_domain::ports::{Job, RuntimeSpec};

use crate::harness::{json_of, Harness};

/// What a file outside the worktree holds; never seen by a session.
const SECRET: &str = "OUTSIDE-SECRET-7f3a";

/// `import(specifier_js)` settled: `["ok", value]` or `["err", code, text]`,
/// with every event of both evals.
async fn import(h: &Harness, s: SessionId, call: &str) -> (Value, Vec<EventPayload>) {
    let start = format!(
        "globalThis.__settled = null; {call}.then(v => {{ globalThis.__settled = ['ok', v] }}, \
         e => {{ globalThis.__settled = ['err', String(e.code), String(e)] }}); undefined"
    );
    let first = h.eval(s, &start).await;
    let read = h.eval(s, "__settled").await;
    let settled = json_of(&read);
    (settled, first.events.into_iter().chain(read.events).collect())
}

fn assert_secret_hidden(events: &[EventPayload], what: &str) {
    for event in events {
        let text = format!("{event:?}");
        assert!(!text.contains(SECRET) && !text.contains("root:x:0"), "{what}: outside content leaked: {text}");
    }
}

fn esm(spec: &mut RuntimeSpec) {
    spec.settings.runtime.esm = true;
}

/// A directory outside the worktree holding `secret.mjs`, and a file
/// `outside-*.mjs` next to the worktree (`../outside-*.mjs` from it).
struct Outside {
    dir: TempDir,
    sibling: NamedTempFile,
}

impl Outside {
    fn new(h: &Harness) -> Self {
        let dir = tempfile::tempdir().expect("a directory outside");
        std::fs::write(dir.path().join("secret.mjs"), format!("export const secret = '{SECRET}';")).unwrap();
        std::fs::write(dir.path().join("secret.json"), format!("{{\"secret\": \"{SECRET}\"}}")).unwrap();
        let sibling = tempfile::Builder::new()
            .prefix("outside-")
            .suffix(".mjs")
            .tempfile_in(h.root().parent().expect("the worktree has a parent"))
            .expect("a file next to the worktree");
        std::fs::write(sibling.path(), format!("export const secret = '{SECRET}';")).unwrap();
        Self { dir, sibling }
    }

    fn sibling_name(&self) -> String {
        self.sibling.path().file_name().unwrap().to_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn import_is_refused_with_a_clear_error_when_esm_is_off() {
    let h = Harness::new();
    h.write("m.mjs", "export const x = 1;");
    let s = h.session().await;
    let disabled = "import is disabled: this template has settings.runtime.esm = false; enable it to load ES \
                    modules from the worktree";
    let cases = [
        ("import('./m.mjs')", "./m.mjs"),
        ("import('m.mjs')", "m.mjs"),
        ("import('./Cargo.toml')", "./Cargo.toml"),
        ("import('./Cargo.toml', { with: { type: 'json' } })", "./Cargo.toml"),
        ("import('/etc/passwd')", "/etc/passwd"),
        ("import('lodash')", "lodash"),
    ];
    for (call, specifier) in cases {
        let (settled, events) = import(&h, s, call).await;
        let message = format!("TypeError: cannot import '{specifier}': {disabled}");
        assert_eq!(settled, json!(["err", "ERR_IMPORT_DISABLED", message]), "{call}");
        assert_secret_hidden(&events, call);
        assert!(!format!("{events:?}").contains("[package]"), "{call}: {events:?}");
    }
}

#[tokio::test]
async fn with_esm_on_worktree_modules_load_with_relative_static_imports_and_json() {
    let h = Harness::new();
    h.write("m.mjs", "export const x = 42;");
    h.write("lib/b.mjs", "export const y = 1;");
    h.write("lib/a.mjs", "import { y } from './b.mjs';\nimport data from '../data.json' with { type: 'json' };\nexport const x = y + data.n;");
    h.write("data.json", "{\"n\": 2, \"list\": [1, \"two\"]}");
    let s = h.session_with(esm).await;
    let cases = [
        ("import('./m.mjs').then(m => m.x)", json!(42)),
        ("import('./lib/a.mjs').then(m => m.x)", json!(3)),
        (
            "import('./data.json', { with: { type: 'json' } }).then(m => m.default)",
            json!({ "n": 2, "list": [1, "two"] }),
        ),
        ("import('./lib/b').then(m => m.y)", json!(1)),
        ("import('lib/b').then(m => m.y)", json!(1)),
        ("Promise.all([import('./m.mjs'), import('./lib/../m.mjs')]).then(([a, b]) => a === b)", json!(true)),
    ];
    for (call, expected) in cases {
        let (settled, _) = import(&h, s, call).await;
        assert_eq!(settled, json!(["ok", expected]), "{call}");
    }
}

#[tokio::test]
async fn a_file_run_imports_relative_to_its_own_directory() {
    let h = Harness::new();
    h.write("src/helper.mjs", "export const h = 'from helper';");
    let path = h.write("src/main.js", "import('./helper.mjs').then(m => console.log(m.h));");
    let s = h.session_with(esm).await;
    let outcome = h.run(s, Job::RunFile { path, args: Map::new(), env: BTreeMap::new() }).await.unwrap();
    assert!(outcome.events.contains(&crate::harness::log("from helper")), "{outcome:?}");
}

#[tokio::test]
async fn a_missing_module_rejects_naming_the_specifier_and_the_paths_tried() {
    let h = Harness::new();
    let s = h.session_with(esm).await;
    let cases = [
        ("./nope.mjs", "Error: cannot find module './nope.mjs' (tried nope.mjs)"),
        ("./lib/nope", "Error: cannot find module './lib/nope' (tried lib/nope, lib/nope.js, lib/nope.mjs)"),
        (
            "nope",
            "Error: cannot find module 'nope': it is not a library name (this template has no libraries) and no \
             file matched (tried nope, nope.js, nope.mjs)",
        ),
    ];
    for (spec, message) in cases {
        let (settled, _) = import(&h, s, &format!("import('{spec}')")).await;
        assert_eq!(settled, json!(["err", "ERR_MODULE_NOT_FOUND", message]));
    }
}

#[tokio::test]
async fn imports_that_leave_the_worktree_reject_and_show_nothing_of_the_outside() {
    let h = Harness::new();
    let outside = Outside::new(&h);
    std::os::unix::fs::symlink(outside.dir.path().join("secret.mjs"), h.root().join("escape.mjs")).unwrap();
    std::os::unix::fs::symlink(outside.dir.path(), h.root().join("escdir")).unwrap();
    let sibling = outside.sibling_name();
    h.write("lib/inner.mjs", &format!("export {{ secret }} from '../../{sibling}';"));
    let s = h
        .session_with(|spec| {
            esm(spec);
            spec.settings.resolver.allow_absolute_repo_imports = true;
        })
        .await;
    let secret_path = outside.dir.path().join("secret.mjs").canonicalize().unwrap();
    let cases = [
        format!("../{sibling}"),
        format!("./lib/../../{sibling}"),
        format!("lib/../../{sibling}"),
        "./escape.mjs".to_owned(),
        "./escape".to_owned(),
        "./escdir/secret.mjs".to_owned(),
        "escdir/secret.json".to_owned(),
        secret_path.display().to_string(),
        format!("file://{}", secret_path.display()),
        "/etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
    ];
    for spec in &cases {
        let (settled, events) = import(&h, s, &format!("import('{spec}')")).await;
        assert_eq!(settled[0], "err", "{spec}: {settled}");
        assert_eq!(settled[1], "ERR_ACCESS_DENIED", "{spec}: {settled}");
        let text = settled[2].as_str().unwrap();
        assert!(text.contains(&format!("'{spec}'")) && text.contains("outside the worktree"), "{spec}: {text}");
        assert_secret_hidden(&events, spec);
    }
    let (settled, events) = import(&h, s, "import('./lib/inner.mjs')").await;
    assert_eq!(settled[1], "ERR_ACCESS_DENIED", "a static import out of the worktree fails too: {settled}");
    assert_secret_hidden(&events, "lib/inner.mjs");
}

#[tokio::test]
async fn absolute_paths_and_file_urls_are_refused_unless_the_template_allows_them() {
    let h = Harness::new();
    let outside = Outside::new(&h);
    let inside = h.write("m.mjs", "export const x = 42;");
    let secret_path = outside.dir.path().join("secret.mjs").canonicalize().unwrap();
    let specifiers = [
        inside.display().to_string(),
        format!("file://{}", inside.display()),
        secret_path.display().to_string(),
        "/etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
    ];
    let s = h.session_with(esm).await;
    for spec in &specifiers {
        let (settled, events) = import(&h, s, &format!("import('{spec}')")).await;
        let message = format!(
            "Error: import '{spec}' denied: absolute paths and file: URLs are disabled for this template \
             (settings.resolver.allow_absolute_repo_imports = false); import relative to the importing file (./, \
             ../) or by a path under the worktree or settings.resolver.roots"
        );
        assert_eq!(settled, json!(["err", "ERR_ACCESS_DENIED", message]), "{spec}");
        assert_secret_hidden(&events, spec);
    }
    let allowed = h
        .session_with(|spec| {
            esm(spec);
            spec.settings.resolver.allow_absolute_repo_imports = true;
        })
        .await;
    for spec in &specifiers[..2] {
        let (settled, _) = import(&h, allowed, &format!("import('{spec}').then(m => m.x)")).await;
        assert_eq!(settled, json!(["ok", 42]), "{spec}");
    }
}

#[tokio::test]
async fn urls_other_than_file_are_refused_naming_the_rule() {
    let h = Harness::new();
    let s = h.session_with(esm).await;
    for spec in ["https://example.com/x.mjs", "node:fs", "data:text/javascript,export default 1"] {
        let (settled, _) = import(&h, s, &format!("import('{spec}')")).await;
        let message = format!(
            "TypeError: cannot import '{spec}': only local files (relative paths, paths under the worktree or \
             settings.resolver.roots, file:/// URLs when absolute imports are allowed) and the template's \
             libraries can be imported"
        );
        assert_eq!(settled, json!(["err", "ERR_UNSUPPORTED_ESM_URL_SCHEME", message]), "{spec}");
    }
}

#[tokio::test]
async fn a_json_file_loads_only_with_the_json_import_attribute() {
    let h = Harness::new();
    h.write("data.json", "{\"n\": 2}");
    h.write("static.mjs", "import data from './data.json';\nexport default data;");
    h.write("bad.json", "{ \"n\": ");
    let s = h.session_with(esm).await;
    let missing = |spec: &str| {
        json!([
            "err",
            "ERR_IMPORT_ATTRIBUTE_MISSING",
            format!(
                "TypeError: cannot import '{spec}': a JSON module needs the import attribute with {{ type: \"json\" }}"
            )
        ])
    };
    let cases = [
        ("import('./data.json')", missing("./data.json")),
        ("import('./static.mjs')", missing("./data.json")),
        (
            "import('./data.json', { with: { type: 'text' } })",
            json!([
                "err",
                "ERR_IMPORT_ATTRIBUTE_UNSUPPORTED",
                "TypeError: cannot import './data.json': import attribute type: \"text\" is not supported (only \
                 type: \"json\")"
            ]),
        ),
        ("import('./data.json', { with: { type: 'json' } }).then(m => m.default.n)", json!(["ok", 2])),
    ];
    for (call, expected) in cases {
        let (settled, _) = import(&h, s, call).await;
        assert_eq!(settled, expected, "{call}");
    }
    let (settled, _) = import(&h, s, "import('./bad.json', { with: { type: 'json' } })").await;
    assert!(settled[2].as_str().unwrap().starts_with("SyntaxError: bad.json: invalid JSON: "), "{settled}");
}

#[tokio::test]
async fn errors_in_imported_modules_name_the_file_line_and_column() {
    let h = Harness::new();
    h.write("lib/bad.mjs", "export const a = 1;\nexport let b = ;");
    h.write("lib/boom.mjs", "export function boom() {\n  throw new RangeError('kaboom');\n}");
    let s = h.session_with(esm).await;
    let (settled, _) = import(&h, s, "import('./lib/bad.mjs')").await;
    assert!(settled[2].as_str().unwrap().starts_with("SyntaxError: lib/bad.mjs:2:"), "{settled}");
    let (settled, _) =
        import(&h, s, "import('./lib/boom.mjs').then(m => m.boom()).catch(e => { throw e.stack })").await;
    assert!(settled[2].as_str().unwrap().contains("lib/boom.mjs:2:"), "{settled}");
}

#[tokio::test]
async fn resolver_roots_inside_and_outside_the_worktree_are_importable() {
    let h = Harness::new();
    let shared = tempfile::tempdir().expect("a shared root");
    std::fs::write(shared.path().join("util.mjs"), "import { v } from './dep.mjs'; export const z = v * 7;").unwrap();
    std::fs::write(shared.path().join("dep.mjs"), "export const v = 1;").unwrap();
    h.write("vendor/pkg.js", "export const p = 'vendored';");
    let root = shared.path().display().to_string();
    let s = h
        .session_with(|spec| {
            esm(spec);
            spec.settings.resolver.roots = vec![root.clone(), "vendor".into()];
            spec.settings.resolver.allow_absolute_repo_imports = true;
        })
        .await;
    let cases = [
        ("import('util.mjs').then(m => m.z)", json!(7)),
        ("import('util').then(m => m.z)", json!(7)),
        ("import('pkg').then(m => m.p)", json!("vendored")),
    ];
    for (call, expected) in cases {
        let (settled, _) = import(&h, s, call).await;
        assert_eq!(settled, json!(["ok", expected]), "{call}");
    }
    let absolute = format!("import('{root}/util.mjs').then(m => m.z)");
    let (settled, _) = import(&h, s, &absolute).await;
    assert_eq!(settled, json!(["ok", 7]), "an absolute path into a root, when allowed");
}
