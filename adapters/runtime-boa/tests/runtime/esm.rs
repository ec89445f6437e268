//! Files run as ES modules (SPEC §11): with `runtime.esm` on, or any `.mjs`
//! file; static imports, JSON modules and catalog libraries by bare name.
//! Every test here needs engine wiring: the engine runs such files through
//! `WorktreeLoader::evaluate_file` and hands the loader its libraries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use vm_domain::catalog::LibraryRef;
use vm_domain::ids::SessionId;
use vm_domain::ports::{Job, Outcome, RuntimeSpec};

use crate::harness::{exception, json_of, log, Harness};

fn esm(spec: &mut RuntimeSpec) {
    spec.settings.runtime.esm = true;
}

/// Caches small stand-ins for lodash and dayjs and configures them.
fn with_libraries(h: &Harness, spec: &mut RuntimeSpec) {
    h.cache_library(
        "lodash-4.17.21",
        "var _ = function lodash() {}; _.chunk = (xs, n) => [xs.slice(0, n), xs.slice(n)]; _.VERSION = '4.17.21';",
    );
    h.cache_library("dayjs-1.11.10", "var dayjs = () => 'a day';");
    spec.libraries =
        ["lodash-4.17.21", "dayjs-1.11.10"].map(|name| LibraryRef::parse(name).expect("a catalog library")).to_vec();
}

/// `import(specifier_js)` settled: `["ok", value]` or `["err", text]`.
async fn import(h: &Harness, s: SessionId, call: &str) -> Value {
    let start = format!(
        "globalThis.__settled = null; {call}.then(v => {{ globalThis.__settled = ['ok', v] }}, \
         e => {{ globalThis.__settled = ['err', String(e)] }}); undefined"
    );
    h.eval(s, &start).await;
    json_of(&h.eval(s, "__settled").await)
}

async fn run_file(h: &Harness, s: SessionId, path: PathBuf) -> Outcome {
    h.run(s, Job::RunFile { path, args: Map::new(), env: BTreeMap::new() }).await.expect("the session is live")
}

// needs engine wiring
#[tokio::test]
async fn a_module_file_runs_nested_modules_json_and_libraries_by_bare_name() {
    let h = Harness::new();
    let main = h.write(
        "src/main.mjs",
        "import { b } from './lib/b.js';\n\
         import data from '../data.json' with { type: 'json' };\n\
         import _, { chunk } from 'lodash';\n\
         import dayjs from 'dayjs';\n\
         export const a = 'a';\n\
         console.log(b, data.n, JSON.stringify(chunk([1, 2, 3], 1)), _.VERSION, dayjs());",
    );
    h.write("src/lib/b.js", "import { c } from './c.js';\nexport const b = 'b+' + c;");
    h.write("src/lib/c.js", "import { a } from '../main.mjs';\nexport const c = 'c';\nexport const later = () => a;");
    h.write("data.json", "{\"n\": 7}");
    let s = h
        .session_with(|spec| {
            esm(spec);
            with_libraries(&h, spec);
        })
        .await;
    let outcome = run_file(&h, s, main).await;
    assert!(outcome.events.contains(&log("b+c 7 [[1],[2,3]] 4.17.21 a day")), "{outcome:?}");
}

// needs engine wiring
#[tokio::test]
async fn a_mjs_file_loads_its_dependencies_with_esm_off_while_the_repl_may_not() {
    let h = Harness::new();
    let main = h.write("main.mjs", "import { b } from './b.js';\nconsole.log(b);");
    h.write("b.js", "export const b = 'from b';");
    let s = h.session().await;
    let outcome = run_file(&h, s, main).await;
    assert!(outcome.events.contains(&log("from b")), "{outcome:?}");
    let settled = import(&h, s, "import('./b.js')").await;
    assert!(
        settled[1].as_str().unwrap().starts_with("TypeError: cannot import './b.js': import is disabled"),
        "{settled}"
    );
}

// needs engine wiring
#[tokio::test]
async fn a_js_file_is_a_module_when_esm_is_on() {
    let h = Harness::new();
    let main = h.write("main.js", "import { b } from './b.js';\nconsole.log(b);");
    h.write("b.js", "export const b = 'from b';");
    let s = h.session_with(esm).await;
    let outcome = run_file(&h, s, main).await;
    assert!(outcome.events.contains(&log("from b")), "{outcome:?}");
}

// needs engine wiring
#[tokio::test]
async fn libraries_import_by_bare_name_from_the_repl_and_unknown_names_list_them() {
    let h = Harness::new();
    let s = h
        .session_with(|spec| {
            esm(spec);
            with_libraries(&h, spec);
        })
        .await;
    let settled = import(&h, s, "import('lodash').then(m => m.default === _ && m.chunk === _.chunk)").await;
    assert_eq!(settled, json!(["ok", true]));
    let settled = import(&h, s, "import('left-pad')").await;
    let message = "Error: cannot find module 'left-pad': it is not a library name (this template's libraries: \
                   lodash, dayjs) and no file matched (tried left-pad, left-pad.js, left-pad.mjs)";
    assert_eq!(settled, json!(["err", message]));
}

// needs engine wiring
#[tokio::test]
async fn errors_in_a_module_file_name_the_file_line_and_column() {
    let h = Harness::new();
    let bad = h.write("bad.mjs", "const a = 1;\nconst = 2;");
    let refused = h.write("refused.mjs", "import './nope.js';");
    let boom = h.write("boom.mjs", "import { boom } from './lib/boom.js';\nboom();");
    h.write("lib/boom.js", "export function boom() {\n  throw new TypeError('kaboom');\n}");
    let s = h.session().await;
    let (message, _) = exception(&run_file(&h, s, bad).await);
    assert!(message.starts_with("SyntaxError: bad.mjs:2:"), "{message}");
    let (message, _) = exception(&run_file(&h, s, refused).await);
    assert_eq!(message, "Error: cannot find module './nope.js' (tried nope.js)");
    let (message, stack) = exception(&run_file(&h, s, boom).await);
    assert_eq!(message, "TypeError: kaboom");
    assert!(stack.contains("lib/boom.js:2:"), "{stack}");
}
