//! The engine through the port: values, console, exceptions, promises,
//! files, libraries and sessions, each in a real worker process.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use vm_domain::catalog::LibraryRef;
use vm_domain::event::{ConsoleLevel, EventPayload};
use vm_domain::ids::SessionId;
use vm_domain::ports::{Ending, Job, JsRuntime, LibraryCache, LimitHit, Outcome, RuntimeError, StateAfter};
use vm_runtime_boa::FsLibraryCache;

use crate::harness::{completed, exception, log, value, Harness};

#[tokio::test]
async fn a_variable_declared_in_one_eval_is_visible_in_the_next() {
    let h = Harness::new();
    let s = h.session().await;
    assert_eq!(h.eval(s, "let x = 40").await, completed(vec![value("undefined", "undefined", None)]));
    assert_eq!(h.eval(s, "x + 2").await, completed(vec![value("number", "42", Some(json!(42)))]));
}

#[tokio::test]
async fn completion_values_have_a_type_a_node_like_preview_and_json_when_representable() {
    let h = Harness::new();
    let s = h.session().await;
    let cases: &[(&str, &str, &str, Option<Value>)] = &[
        ("1 + 1", "number", "2", Some(json!(2))),
        ("0.1 + 0.2", "number", "0.30000000000000004", Some(json!(0.30000000000000004))),
        ("NaN", "number", "NaN", None),
        ("'hi'", "string", "'hi'", Some(json!("hi"))),
        ("\"it's\"", "string", "\"it's\"", Some(json!("it's"))),
        ("true", "boolean", "true", Some(json!(true))),
        ("null", "null", "null", Some(Value::Null)),
        ("undefined", "undefined", "undefined", None),
        ("10n", "bigint", "10n", None),
        ("Symbol('s')", "symbol", "Symbol(s)", None),
        ("(function f() {})", "function", "[Function: f]", None),
        ("(class A {})", "function", "[class A]", None),
        ("({ a: 1, b: [1, 2] })", "object", "{ a: 1, b: [ 1, 2 ] }", Some(json!({"a": 1, "b": [1, 2]}))),
        ("[1, 'two', null]", "array", "[ 1, 'two', null ]", Some(json!([1, "two", null]))),
        ("[1, , 3]", "array", "[ 1, <1 empty item>, 3 ]", Some(json!([1, null, 3]))),
        ("({})", "object", "{}", Some(json!({}))),
        ("({ 'a-b': 1, f() {} })", "object", "{ 'a-b': 1, f: [Function: f] }", Some(json!({"a-b": 1}))),
        (
            "({ a: { b: { c: { d: 1 } } } })",
            "object",
            "{ a: { b: { c: [Object] } } }",
            Some(json!({"a": {"b": {"c": {"d": 1}}}})),
        ),
        ("class P { constructor() { this.x = 1 } }; new P()", "object", "P { x: 1 }", Some(json!({"x": 1}))),
        ("let o = { n: 1 }; o.self = o; o", "object", "{ n: 1, self: [Circular] }", None),
        ("new Map([['k', 1]])", "object", "Map(1) { 'k' => 1 }", Some(json!({}))),
        ("new Set([1, 2])", "object", "Set(2) { 1, 2 }", Some(json!({}))),
        ("new Date(0)", "object", "1970-01-01T00:00:00.000Z", Some(json!("1970-01-01T00:00:00.000Z"))),
        ("Promise.resolve(7)", "object", "Promise { 7 }", Some(json!({}))),
        ("new Error('boom')", "object", "Error: boom", Some(json!({}))),
    ];
    for (source, kind, preview, json) in cases {
        let outcome = h.eval(s, source).await;
        assert_eq!(outcome, completed(vec![value(kind, preview, json.clone())]), "{source}");
    }
}

#[tokio::test]
async fn console_methods_are_captured_in_order_with_their_levels_and_node_formatting() {
    let h = Harness::new();
    let s = h.session().await;
    let outcome = h
        .eval(
            s,
            r#"console.log('%s is %d', 'a', 1);
               console.info('info', { a: 1 });
               console.warn('warn %o', [1, 'x']);
               console.error(new Error('bad'));
               console.debug('%d%% done', 50, 'extra');
               console.log({ deep: { list: [1, 2] } }, 'text', 3);
               'done'"#,
        )
        .await;
    let line = |level, text: &str| EventPayload::Console { level, text: text.into() };
    assert_eq!(
        outcome,
        completed(vec![
            line(ConsoleLevel::Log, "a is 1"),
            line(ConsoleLevel::Info, "info { a: 1 }"),
            line(ConsoleLevel::Warn, "warn [ 1, 'x' ]"),
            line(ConsoleLevel::Error, "Error: bad"),
            line(ConsoleLevel::Debug, "50% done extra"),
            line(ConsoleLevel::Log, "{ deep: { list: [ 1, 2 ] } } text 3"),
            value("string", "'done'", Some(json!("done"))),
        ])
    );
}

#[tokio::test]
async fn thrown_values_become_exception_events_with_a_message_and_a_stack() {
    let h = Harness::new();
    let s = h.session().await;
    let cases = [
        ("y", "ReferenceError: y is not defined"),
        ("null.x", "TypeError: "),
        ("let notFn = 1; notFn()", "TypeError: "),
        ("throw 'str'", "str"),
        ("throw new RangeError('out')", "RangeError: out"),
        ("throw { code: 7 }", "{ code: 7 }"),
        ("1 +", "SyntaxError: "),
    ];
    for (source, message_start) in cases {
        let (message, stack) = exception(&h.eval(s, source).await);
        assert!(message.starts_with(message_start), "{source}: {message}");
        assert!(stack.starts_with(&message), "{source}: {stack}");
        assert!(stack.contains("<repl>"), "{source}: {stack}");
    }
}

#[tokio::test]
async fn a_thrown_error_keeps_the_functions_it_passed_through_in_its_stack() {
    let h = Harness::new();
    let s = h.session().await;
    let (message, stack) = exception(&h.eval(s, "function boom() { throw new Error('boom') }\nboom()").await);
    assert_eq!(message, "Error: boom");
    assert!(stack.starts_with("Error: boom\n    at boom (<repl>:1:"), "{stack}");
}

#[tokio::test]
async fn promise_callbacks_run_before_the_outcome_is_reported() {
    let h = Harness::new();
    let s = h.session().await;
    let outcome = h.eval(s, "Promise.resolve(2).then(v => console.log('then', v)); 'sync'").await;
    assert_eq!(outcome, completed(vec![log("then 2"), value("string", "'sync'", Some(json!("sync")))]));
    let outcome = h.eval(s, "(async () => { await null; return 5 })()").await;
    assert_eq!(outcome, completed(vec![value("object", "Promise { 5 }", Some(json!({})))]));
}

#[tokio::test]
async fn run_file_sees_args_and_env_and_leaves_its_globals_for_later_evals() {
    let h = Harness::new();
    let s = h.session().await;
    let path =
        h.write("scripts/job.js", "console.log(__ARGS__.n, __ENV__.MODE);\nvar fromFile = __ARGS__.n * 2;\nfromFile");
    let args = Map::from_iter([("n".to_owned(), json!(21))]);
    let env = BTreeMap::from([("MODE".to_owned(), "test".to_owned())]);
    let outcome = h.run(s, Job::RunFile { path, args, env }).await.expect("a live session");
    assert_eq!(outcome, completed(vec![log("21 test"), value("number", "42", Some(json!(42)))]));
    assert_eq!(h.eval(s, "fromFile + 1").await, completed(vec![value("number", "43", Some(json!(43)))]));
}

#[tokio::test]
async fn an_error_in_a_file_names_the_file_in_its_stack() {
    let h = Harness::new();
    let s = h.session().await;
    let path = h.write("lib/bad.js", "function bad() {\n  throw new Error('in file')\n}\nbad()");
    let job = Job::RunFile { path, args: Map::new(), env: BTreeMap::new() };
    let (message, stack) = exception(&h.run(s, job).await.expect("a live session"));
    assert_eq!(message, "Error: in file");
    assert!(stack.contains("at bad (lib/bad.js:2:"), "{stack}");
}

#[tokio::test]
async fn deep_recursion_is_a_range_error_and_the_session_survives() {
    let h = Harness::new();
    let s = h.session().await;
    let cases = [
        "function f() { return f() } f()",
        "function g(n) { return [n].map(g) } g(0)",
        "const o = { get x() { return this.x } }; o.x",
    ];
    for source in cases {
        let (message, stack) = exception(&h.eval(s, source).await);
        assert_eq!(message, "RangeError: Maximum call stack size exceeded", "{source}");
        assert!(stack.contains("\n    at "), "{source}: {stack}");
        assert_eq!(h.eval(s, "1 + 1").await, completed(vec![value("number", "2", Some(json!(2)))]), "after {source}");
    }
    let outcome = h.eval(s, "function depth(n) { return n === 0 ? 0 : 1 + depth(n - 1) } depth(5000)").await;
    assert_eq!(outcome, completed(vec![value("number", "5000", Some(json!(5000)))]));
}

#[tokio::test]
async fn a_console_flood_stops_at_max_events_with_exactly_that_many_events_kept() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.max_events = 10).await;
    for source in ["for (;;) console.log('x')", "for (;;) { try { console.log('x') } catch (e) {} }"] {
        let outcome = h.eval(s, source).await;
        assert_eq!(outcome.ending, Ending::Limit { hit: LimitHit::Events { max_events: 10 }, state: StateAfter::Kept });
        assert_eq!(outcome.events, vec![log("x"); 10], "{source}");
    }
}

#[tokio::test]
async fn the_event_limit_counts_console_events_but_not_the_closing_value() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.max_events = 2).await;
    let outcome = h.eval(s, "console.log(1); console.log(2); 'done'").await;
    assert_eq!(outcome, completed(vec![log("1"), log("2"), value("string", "'done'", Some(json!("done")))]));
}

#[tokio::test]
async fn one_huge_output_stops_at_max_output_kb_keeping_what_came_before() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.max_output_kb = 1).await;
    let outcome = h.eval(s, "console.log('small'); console.log('x'.repeat(5000)); console.log('never')").await;
    assert_eq!(
        outcome,
        Outcome {
            events: vec![log("small")],
            ending: Ending::Limit { hit: LimitHit::Output { max_output_kb: 1 }, state: StateAfter::Kept }
        }
    );
}

#[tokio::test]
async fn a_job_stopped_by_a_limit_leaves_nothing_behind_for_the_next_job() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.max_events = 3).await;
    let outcome = h.eval(s, "Promise.resolve().then(() => { globalThis.late = 1 }); for (;;) console.log('x')").await;
    assert_eq!(outcome.events, vec![log("x"); 3]);
    let next = h.eval(s, "console.log('next'); typeof late").await;
    assert_eq!(next, completed(vec![log("next"), value("string", "'undefined'", Some(json!("undefined")))]));
}

#[tokio::test]
async fn a_huge_value_is_clipped_to_the_output_limit_and_loses_its_json() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.max_output_kb = 1).await;
    let outcome = h.eval(s, "'x'.repeat(5000)").await;
    assert_eq!(outcome.ending, Ending::Completed);
    match &outcome.events[..] {
        [EventPayload::Value { kind, preview, json: None }] => {
            assert_eq!(kind, "string");
            assert!(preview.starts_with("'xxx") && preview.ends_with("… (3978 more bytes)"), "{preview}");
        }
        other => panic!("expected one clipped value event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_disabled_console_produces_no_events() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.runtime.console = false).await;
    let outcome = h.eval(s, "console.log('hidden'); console.error('hidden'); 1").await;
    assert_eq!(outcome, completed(vec![value("number", "1", Some(json!(1)))]));
}

#[tokio::test]
async fn strict_mode_applies_to_snippets_when_the_template_asks_for_it() {
    let h = Harness::new();
    let sloppy = h.session().await;
    let strict = h.session_with(|spec| spec.settings.runtime.strict = true).await;
    assert_eq!(h.eval(sloppy, "undeclared = 1").await, completed(vec![value("number", "1", Some(json!(1)))]));
    let (message, _) = exception(&h.eval(strict, "undeclared = 1").await);
    assert!(message.starts_with("ReferenceError: "), "{message}");
}

#[tokio::test]
async fn libraries_from_the_cache_are_loaded_into_the_global_scope_in_order() {
    let h = Harness::new();
    h.cache_library(
        "lodash-4.17.21",
        "var _ = { chunk: (xs, n) => xs.length ? [xs.slice(0, n), ..._.chunk(xs.slice(n), n)] : [] };",
    );
    h.cache_library("ramda-0.29.0", "var R = { head: xs => _.chunk(xs, 1)[0][0] };");
    let libraries = ["lodash-4.17.21", "ramda-0.29.0"].map(|name| LibraryRef::parse(name).expect("a catalog library"));
    let s = h.session_with(|spec| spec.libraries = libraries.to_vec()).await;
    let outcome = h.eval(s, "[_.chunk([1, 2, 3], 2), R.head([9, 8])]").await;
    assert_eq!(outcome, completed(vec![value("array", "[ [ [ 1, 2 ], [ 3 ] ], 9 ]", Some(json!([[[1, 2], [3]], 9])))]));
}

#[tokio::test]
async fn a_library_missing_from_the_cache_fails_the_start_and_says_how_to_fix_it() {
    let h = Harness::new();
    let mut spec = h.spec();
    spec.libraries = vec![LibraryRef::parse("lodash-4.17.21").expect("a catalog library")];
    let session = spec.session_id;
    match h.runtime.start(spec).await {
        Err(RuntimeError::StartFailed(message)) => {
            assert!(message.starts_with("library lodash-4.17.21 is not in the cache at "), "{message}");
            assert!(message.ends_with("; run `vm-system libs download`"), "{message}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert!(!h.runtime.live_sessions().contains(&session));
}

#[tokio::test]
async fn a_library_that_throws_or_defines_nothing_fails_the_start() {
    let cases = [
        ("throw new Error('corrupt')", "failed to load: Error: corrupt"),
        ("var notLodash = 1", "did not define the global `_`"),
    ];
    for (text, reason) in cases {
        let h = Harness::new();
        h.cache_library("lodash-4.17.21", text);
        let mut spec = h.spec();
        spec.libraries = vec![LibraryRef::parse("lodash-4.17.21").expect("a catalog library")];
        match h.runtime.start(spec).await {
            Err(RuntimeError::StartFailed(message)) => {
                assert!(message.contains(reason), "{message}")
            }
            other => panic!("{text}: expected StartFailed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn running_on_an_unknown_session_is_unavailable() {
    let h = Harness::new();
    let result = h.run(SessionId::new(), Job::Eval { source: "1".into() }).await;
    assert!(matches!(result, Err(RuntimeError::Unavailable(_))), "{result:?}");
}

#[tokio::test]
async fn closing_twice_is_harmless_and_live_sessions_follow() {
    let h = Harness::new();
    let a = h.session().await;
    let b = h.session().await;
    let mut live = h.runtime.live_sessions();
    live.sort_by_key(|id| id.to_string());
    let mut expected = vec![a, b];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(live, expected);
    h.runtime.close(a).await;
    h.runtime.close(a).await;
    assert_eq!(h.runtime.live_sessions(), vec![b]);
    assert!(matches!(h.run(a, Job::Eval { source: "1".into() }).await, Err(RuntimeError::Unavailable(_))));
    assert_eq!(h.eval(b, "1").await, completed(vec![value("number", "1", Some(json!(1)))]));
}

#[tokio::test]
async fn two_sessions_keep_separate_globals() {
    let h = Harness::new();
    let a = h.session().await;
    let b = h.session().await;
    h.eval(a, "var who = 'a'").await;
    assert_eq!(
        h.eval(b, "typeof who").await,
        completed(vec![value("string", "'undefined'", Some(json!("undefined")))])
    );
    assert_eq!(h.eval(a, "who").await, completed(vec![value("string", "'a'", Some(json!("a")))]));
}

#[tokio::test]
async fn a_busy_session_does_not_hold_up_another_on_the_same_async_thread() {
    let h = Harness::new();
    let busy = h.session().await;
    let other = h.session().await;
    let spin = h.eval(busy, "const end = Date.now() + 1000; while (Date.now() < end) {} 'spun'");
    let quick = async {
        let outcome = tokio::time::timeout(Duration::from_millis(500), h.eval(other, "'quick'")).await;
        outcome.expect("the other session answers while the busy one spins")
    };
    let (spun, quick) = tokio::join!(spin, quick);
    assert_eq!(quick, completed(vec![value("string", "'quick'", Some(json!("quick")))]));
    assert_eq!(spun, completed(vec![value("string", "'spun'", Some(json!("spun")))]));
}

#[tokio::test]
async fn the_library_cache_reports_only_files_that_exist() {
    let h = Harness::new();
    h.cache_library("lodash-4.17.21", "var _ = {}");
    let cache = FsLibraryCache::new(h.cache.path());
    assert!(cache.is_cached(&LibraryRef::parse("lodash-4.17.21").expect("a catalog library")));
    assert!(!cache.is_cached(&LibraryRef::parse("moment-2.29.4").expect("a catalog library")));
}

#[tokio::test]
async fn a_library_downloaded_again_reaches_new_sessions_while_old_ones_keep_theirs() {
    let h = Harness::new();
    let lodash = || vec![LibraryRef::parse("lodash-4.17.21").expect("a catalog library")];
    h.cache_library("lodash-4.17.21", "var _ = { v: 1 };");
    let old = h.session_with(|spec| spec.libraries = lodash()).await;
    h.cache_library("lodash-4.17.21", "var _ = { v: 2, longer: true };");
    let new = h.session_with(|spec| spec.libraries = lodash()).await;
    assert_eq!(h.eval(old, "_.v").await, completed(vec![value("number", "1", Some(json!(1)))]));
    assert_eq!(h.eval(new, "_.v").await, completed(vec![value("number", "2", Some(json!(2)))]));
    let third = h.session_with(|spec| spec.libraries = lodash()).await;
    assert_eq!(h.eval(third, "_.v").await, completed(vec![value("number", "2", Some(json!(2)))]));
}
