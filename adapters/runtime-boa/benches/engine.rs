//! The session engine beside bare boa 0.22 on the same machine:
//! `fib(25)` in a plain `boa_engine::Context` and in a session (a real,
//! sandboxed worker process: event loop, web globals, limits and the
//! memory-counting allocator included), and a REPL `1 + 1` through the
//! runtime port (the worker's round trip, without HTTP or the store).
//! `cargo bench -p vm-runtime-boa --bench engine`.

use std::sync::Arc;
use std::time::Duration;

use boa_engine::{Context, Source};
use criterion::{criterion_group, criterion_main, Criterion};
use vm_domain::ids::SessionId;
use vm_domain::paths::WorktreePath;
use vm_domain::ports::{Ending, Job, JsRuntime, RuntimeSpec};
use vm_domain::template::Settings;
use vm_runtime_boa::sandbox::SandboxMode;
use vm_runtime_boa::BoaRuntime;

const FIB: &str = "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) }";

fn bare_boa(c: &mut Criterion) {
    let mut context = Context::default();
    context.eval(Source::from_bytes(FIB)).expect("fib is defined");
    let mut group = c.benchmark_group("fib25");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("bare_boa", |b| {
        b.iter(|| context.eval(Source::from_bytes("fib(25)")).expect("fib(25) runs"));
    });
    group.finish();
}

fn session(c: &mut Criterion) {
    let tokio = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let cache = tempfile::tempdir().expect("a cache dir");
    let worktree = tempfile::tempdir().expect("a worktree");
    let sandbox = SandboxMode::on("nobody").unwrap_or(SandboxMode::Off);
    let runtime = BoaRuntime::new(cache.path().to_path_buf(), sandbox);
    let mut settings = Settings::default();
    settings.limits.wall_ms = 600_000;
    settings.limits.cpu_ms = 600_000;
    let spec = RuntimeSpec {
        session_id: SessionId::new(),
        worktree: WorktreePath::parse(worktree.path().to_str().expect("UTF-8")).expect("a worktree"),
        settings,
        modules: Vec::new(),
        libraries: Vec::new(),
        capabilities: Vec::new(),
    };
    let id = spec.session_id;
    tokio.block_on(runtime.start(spec)).expect("the session starts");
    let run = |source: &str| {
        let outcome = tokio
            .block_on(runtime.run(id, Job::Eval { source: source.into() }, Arc::new(|_| {})))
            .expect("the session is live");
        assert_eq!(outcome.ending, Ending::Completed, "{outcome:?}");
    };
    run(FIB);
    let mut group = c.benchmark_group("fib25");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("session", |b| b.iter(|| run("fib(25)")));
    group.finish();
    let mut group = c.benchmark_group("repl");
    group.bench_function("1+1", |b| b.iter(|| run("1 + 1")));
    group.finish();
}

criterion_group!(benches, bare_boa, session);
criterion_main!(benches);
