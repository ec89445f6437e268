//! The event loop and the web globals, in a real worker: a job ends when
//! its code returned and no promise job, timer or host operation is left;
//! each global answers as a table row says.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vm_domain::event::EventPayload;
use vm_domain::ports::{Ending, LimitHit, StateAfter};

use crate::harness::{exception, json_of, Harness};

/// The console lines of an outcome, in order.
fn lines(outcome: &vm_domain::ports::Outcome) -> Vec<String> {
    outcome
        .events
        .iter()
        .filter_map(|event| match event {
            EventPayload::Console { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn callbacks_run_in_node_order_and_belong_to_the_job_that_scheduled_them() {
    let h = Harness::new();
    let s = h.session().await;
    let outcome = h
        .eval(
            s,
            r#"console.log('sync 1');
               setTimeout(() => console.log('timeout 20'), 20);
               setTimeout(() => { console.log('timeout 0'); Promise.resolve().then(() => console.log('micro in timer')) }, 0);
               queueMicrotask(() => console.log('microtask'));
               Promise.resolve().then(() => console.log('promise'));
               console.log('sync 2');
               'returned'"#,
        )
        .await;
    assert_eq!(
        lines(&outcome),
        ["sync 1", "sync 2", "microtask", "promise", "timeout 0", "micro in timer", "timeout 20"],
        "{outcome:?}"
    );
    assert_eq!(json_of(&outcome), json!("returned"));
}

#[tokio::test]
async fn timers_wait_for_real_without_spending_cpu_and_can_be_cleared() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.cpu_ms = 150).await;
    let started = Instant::now();
    let outcome = h
        .eval(
            s,
            r#"const t0 = performance.now();
               let ticks = 0;
               const cleared = setTimeout(() => console.log('never'), 10);
               clearTimeout(cleared);
               const every = setInterval(() => { ticks++; if (ticks === 3) clearInterval(every) }, 50);
               setTimeout(() => console.log('late'), 400);
               new Promise(resolve => setTimeout(resolve, 400)).then(() => [ticks, performance.now() - t0 >= 399])"#,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(lines(&outcome), ["late"], "{outcome:?}");
    assert!(took >= Duration::from_millis(400), "the job ended after {took:?}, before its last timer");
    assert_eq!(outcome.ending, Ending::Completed, "400 ms of waiting cost no CPU time: {outcome:?}");
    let done = h.eval(s, "await new Promise(resolve => setTimeout(() => resolve(ticks), 1))").await;
    assert_eq!(json_of(&done), json!(3));
}

#[tokio::test]
async fn an_interval_never_cleared_runs_until_the_wall_limit_and_leaves_nothing_behind() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.wall_ms = 400).await;
    h.eval(s, "globalThis.kept = 1").await;
    let outcome = h.eval(s, "globalThis.kept = 2; setInterval(() => console.log('tick'), 100)").await;
    assert!(
        matches!(
            outcome.ending,
            Ending::Limit { hit: LimitHit::WallTime { limit_ms: 400 }, state: StateAfter::RolledBack }
        ),
        "{outcome:?}"
    );
    assert!(lines(&outcome).len() >= 2, "the interval ran while the job lived: {outcome:?}");
    let after = h.eval(s, "kept").await;
    assert_eq!(json_of(&after), json!(1), "rolled back to before the job");
    assert!(lines(&after).is_empty(), "no tick of the old interval leaks into the next job: {after:?}");
}

#[tokio::test]
async fn a_throwing_callback_or_an_unhandled_rejection_ends_the_job_with_its_exception() {
    let h = Harness::new();
    let s = h.session().await;
    let cases = [
        (
            "setTimeout(() => { throw new TypeError('in timer') }, 1); setTimeout(() => console.log('dropped'), 50)",
            "TypeError: in timer",
        ),
        ("Promise.reject(new RangeError('nobody caught me')); 1", "RangeError: nobody caught me"),
        ("queueMicrotask(() => { throw new Error('in microtask') })", "Error: in microtask"),
        ("(async () => { await null; throw new SyntaxError('async') })()", "SyntaxError: async"),
    ];
    for (source, expected) in cases {
        let outcome = h.eval(s, source).await;
        let (message, _) = exception(&outcome);
        assert_eq!(message, expected, "{source}");
        assert!(lines(&outcome).is_empty(), "{source}: {outcome:?}");
    }
    let handled = h.eval(s, "const p = Promise.reject(new Error('late')); p.catch(() => 'caught')").await;
    assert_eq!(json_of(&handled), json!({}), "a rejection handled in the same turn is not unhandled");
}

#[tokio::test]
async fn top_level_await_gives_the_awaited_value_and_keeps_declarations() {
    let h = Harness::new();
    let s = h.session().await;
    let steps: &[(&str, Value)] = &[
        ("await Promise.resolve(5)", json!(5)),
        ("const r = await Promise.resolve(6); r", json!(6)),
        ("r + 1", json!(7)),
        ("let { a, b: [c, ...rest] } = await Promise.resolve({ a: 1, b: [2, 3, 4] })", Value::Null),
        ("[a, c, rest]", json!([1, 2, [3, 4]])),
        ("function twice(n) { return 2 * n } class Box { constructor(v) { this.v = v } } await null", Value::Null),
        ("new Box(twice(r)).v", json!(12)),
        ("let n = 0; const inc = () => ++n; await null", Value::Null),
        ("inc(); inc(); n", json!(2)),
        ("await new Promise(resolve => setTimeout(() => resolve('timed'), 20))", json!("timed")),
    ];
    for (source, expected) in steps {
        let outcome = h.eval(s, source).await;
        if expected.is_null() {
            assert_eq!(outcome.ending, Ending::Completed, "{source}: {outcome:?}");
        } else {
            assert_eq!(&json_of(&outcome), expected, "{source}");
        }
    }
    let rejected = h.eval(s, "const bad = await Promise.reject(new Error('no'))").await;
    assert_eq!(exception(&rejected).0, "Error: no");
    let never = h.eval(s, "await new Promise(() => {})").await;
    assert!(exception(&never).0.contains("never settled"), "{never:?}");
}

/// One row per global of SPEC §11: (what, expression, expected JSON).
#[tokio::test]
async fn the_web_globals_answer_as_in_a_browser() {
    let h = Harness::new();
    let s = h.session().await;
    let rows: &[(&str, &str, Value)] = &[
        ("setTimeout", "typeof setTimeout + typeof clearTimeout + typeof setInterval + typeof clearInterval", json!("functionfunctionfunctionfunction")),
        ("queueMicrotask", "typeof queueMicrotask", json!("function")),
        ("structuredClone", "const o = { d: new Date(0), m: new Map([[1, 2]]) }; o.self = o; const c = structuredClone(o); [c !== o, c.self === c, c.m.get(1), c.d.getTime()]", json!([true, true, 2, 0])),
        ("TextEncoder", "Array.from(new TextEncoder().encode('é€'))", json!([195, 169, 226, 130, 172])),
        ("TextDecoder", "new TextDecoder().decode(new Uint8Array([104, 195, 169]))", json!("hé")),
        ("URL", "const u = new URL('../b?x=1#h', 'https://e.org/a/c'); [u.href, u.searchParams.get('x'), u.hash]", json!(["https://e.org/b?x=1#h", "1", "#h"])),
        ("URLSearchParams", "const q = new URLSearchParams('a=1&b=2&a=3'); [q.getAll('a'), q.toString()]", json!([["1", "3"], "a=1&b=2&a=3"])),
        ("atob/btoa", "[btoa('hello'), atob('aGVsbG8=')]", json!(["aGVsbG8=", "hello"])),
        ("AbortController", "const ac = new AbortController(); ac.abort(); [ac.signal.aborted, typeof AbortSignal]", json!([true, "function"])),
        ("performance.now", "const t = performance.now(); [typeof t, t >= 0, performance.now() >= t]", json!(["number", true, true])),
        ("crypto.getRandomValues", "const b = crypto.getRandomValues(new Uint8Array(32)); [b.length, b.some(x => x !== 0)]", json!([32, true])),
        ("crypto.randomUUID", "/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID())", json!(true)),
        ("crypto.subtle.digest", "Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc')))).slice(0, 4)", json!([0xba, 0x78, 0x16, 0xbf])),
    ];
    let mut wrong = Vec::new();
    for (what, source, expected) in rows {
        // A block keeps each row's names to itself; a row that awaits runs
        // at the top level, where the awaited value is the completion.
        let scoped = if source.contains("await") { source.to_string() } else { format!("{{ {source} }}") };
        let outcome = h.eval(s, &scoped).await;
        let got = match (&outcome.ending, outcome.events.last()) {
            (Ending::Completed, Some(EventPayload::Value { json: Some(json), .. })) => json.clone(),
            _ => json!(format!("{outcome:?}")),
        };
        if &got != expected {
            wrong.push(format!("{what}: expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let first = h.eval(s, "crypto.randomUUID()").await;
    let second = h.eval(s, "crypto.randomUUID()").await;
    assert_ne!(json_of(&first), json_of(&second));
}

#[tokio::test]
async fn stack_frames_name_the_snippet_or_file_with_line_and_column() {
    let h = Harness::new();
    let s = h.session().await;
    let cases = [
        ("nope", "at <main> (<repl>:1:1)"),
        ("let a = 1;\n  a + nope", "at <main> (<repl>:2:7)"),
        ("function f() {\n  throw new Error('x') }\nf()", "at f (<repl>:2:9)"),
        ("await null;\nmissing", "at <main> (<repl>:2:1)"),
    ];
    for (source, frame) in cases {
        let (_, stack) = exception(&h.eval(s, source).await);
        assert!(stack.contains(frame), "{source:?}: {stack}");
        assert!(!stack.contains(":?:?"), "{source:?}: {stack}");
    }
    h.write("lib/broken.js", "const fromFile = 1;\n\nundefinedThing(fromFile);\n");
    let job = vm_domain::ports::Job::RunFile {
        path: h.root().join("lib/broken.js"),
        args: Default::default(),
        env: Default::default(),
    };
    let (_, stack) = exception(&h.run(s, job).await.expect("the session is live"));
    assert!(stack.contains("lib/broken.js:3:1"), "{stack}");
}
