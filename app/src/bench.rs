//! `vm-system bench`: a running daemon measured through its API: REPL round
//! trips per concurrency level (with checkpoints, and without for their
//! cost), session creation with and without a library, worker memory (from
//! `/proc`, for a local daemon), console capture, and live executions: the
//! first streamed event, cancel and fork.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vm_http::dto::{
    CreateSessionBody, CreateTemplateBody, ExecutionStatusView, ExecutionWithEventsView, LimitsBody, ReplBody,
    RuntimeSwitchesBody, SettingsBody,
};

use crate::client::{Client, Followed};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrency levels to measure: one session per concurrent client.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    sessions: Vec<usize>,
    /// REPL calls per level (split across its sessions).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Snippet to evaluate.
    #[arg(long, default_value = "1 + 1")]
    input: String,
    /// Worktree for the bench sessions (default: the current directory).
    #[arg(long)]
    worktree: Option<PathBuf>,
    /// Sessions created (and closed) per session-creation measurement.
    #[arg(long, default_value_t = 50)]
    creates: usize,
    /// The library of the second session-creation measurement; skipped when
    /// the daemon's cache does not hold it.
    #[arg(long, default_value = "lodash-4.17.21")]
    library: String,
    /// Idle sessions whose worker memory is read.
    #[arg(long, default_value_t = 8)]
    idle: usize,
    /// Console events per burst, and how many bursts.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    #[arg(long, default_value_t = 20)]
    bursts: usize,
    /// Repetitions of each live-execution measurement (stream, cancel, fork).
    #[arg(long, default_value_t = 50)]
    live: usize,
    /// Create the bench sessions through this node (`placement=local`), so that they run there
    /// while every call goes to --server-url: against another node of the same database, the
    /// difference to a run with --server-url set to this one is the cost of forwarding.
    #[arg(long, value_name = "URL")]
    pub sessions_on: Option<String>,
    /// Measure the REPL round trips only (with checkpoints on), e.g. to compare nodes.
    #[arg(long)]
    repl_only: bool,
}

/// The daemon's API through the CLI's typed client, plus the worktree the
/// bench sessions are bound to.
#[derive(Clone)]
struct Api {
    client: Client,
    /// Where sessions are created, with `placement=local` (`--sessions-on`).
    creator: Option<Client>,
    worktree: String,
}

/// Runs the bench through `client`; `creator` creates the sessions when
/// `--sessions-on` names another node.
pub async fn run(client: Client, creator: Option<Client>, args: BenchArgs) -> anyhow::Result<()> {
    let worktree = match &args.worktree {
        Some(path) => path.clone(),
        None => std::env::current_dir()?,
    };
    let worktree = worktree.canonicalize().context("the bench worktree must exist")?;
    let api = Api { client, creator, worktree: worktree.to_string_lossy().into_owned() };
    let template = api.template("bench", &[], None).await?;
    println!("checkpoints on (the default)");
    repl_levels(&api, &template, &args).await?;
    if args.repl_only {
        api.client.delete_template(&template).await?;
        return Ok(());
    }
    let runtime = RuntimeSwitchesBody { checkpoints: Some(false), ..RuntimeSwitchesBody::default() };
    let without = api
        .template("bench-no-checkpoints", &[], Some(SettingsBody { runtime: Some(runtime), ..SettingsBody::default() }))
        .await?;
    println!("\ncheckpoints off");
    repl_levels(&api, &without, &args).await?;
    api.client.delete_template(&without).await?;
    session_creation(&api, &template, &args).await?;
    idle_memory(&api, &template, args.idle).await?;
    console_bursts(&api, &args).await?;
    live_executions(&api, &template, args.live.max(1)).await?;
    api.client.delete_template(&template).await?;
    Ok(())
}

/// Live executions: how soon a `console.log` reaches a client following
/// the stream (its text is the wall clock in ms when it ran, compared with
/// the client's on arrival: same machine, same clock), how long a cancel
/// of a spinning loop takes to answer, and a fork's round trip.
async fn live_executions(api: &Api, template: &str, runs: usize) -> anyhow::Result<()> {
    let session = api.session(template).await?;
    let mut first_event = Vec::with_capacity(runs);
    let mut cancels = Vec::with_capacity(runs);
    let mut forks = Vec::with_capacity(runs);
    let input = "console.log(String(Date.now())); { const t = Date.now(); while (Date.now() - t < 50) {} }";
    for _ in 0..runs {
        let running = api.submit(&session, input).await?;
        let mut stream = api.client.follow(&running, None);
        let seen = first_event.len();
        while let Some(followed) = stream.next().await? {
            if let Followed::Event(event) = followed {
                if event.value.kind == "console" {
                    let logged: u128 = event.value.payload["text"].as_str().unwrap_or("0").parse().unwrap_or(0);
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros();
                    first_event.push(Duration::from_micros(now.saturating_sub(logged * 1000) as u64));
                }
            }
        }
        if first_event.len() != seen + 1 {
            bail!("the streamed execution did not log its line once");
        }
    }
    for _ in 0..runs {
        let running = api.submit(&session, "while (true) {}").await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        let cancelled = api.client.cancel_execution(&running).await?;
        cancels.push(t.elapsed());
        if cancelled.value.status != ExecutionStatusView::Cancelled {
            bail!("the cancelled loop ended {:?}", cancelled.value.status);
        }
    }
    for _ in 0..runs {
        let t = Instant::now();
        let fork = api.client.fork_session(&session).await?.value.id;
        forks.push(t.elapsed());
        api.close(&fork.to_string()).await?;
    }
    println!("\nlive executions ({runs} each)");
    println!("{:>34} {:>9} {:>9} {:>9}", "measure", "p50_ms", "p99_ms", "max_ms");
    for (label, mut figures) in [
        ("console.log -> SSE client", first_event),
        ("cancel of while(true) answered", cancels),
        ("fork (HTTP round trip)", forks),
    ] {
        figures.sort();
        println!(
            "{label:>34} {:>9.3} {:>9.3} {:>9.3}",
            ms(percentile(&figures, 0.50)),
            ms(percentile(&figures, 0.99)),
            ms(*figures.last().expect("at least one run"))
        );
    }
    api.close(&session).await?;
    Ok(())
}

async fn repl_levels(api: &Api, template: &str, args: &BenchArgs) -> anyhow::Result<()> {
    println!("REPL round trip ({:?})", args.input);
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "sessions", "requests", "p50_ms", "p99_ms", "max_ms", "exec_per_s"
    );
    for &level in &args.sessions {
        if level == 0 {
            bail!("--sessions levels must be positive");
        }
        let mut sessions = Vec::new();
        for _ in 0..level {
            sessions.push(api.session(template).await?);
        }
        for session in &sessions {
            for _ in 0..20 {
                api.repl(session, &args.input).await?;
            }
        }
        let per_session = (args.requests / level).max(1);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for session in sessions.clone() {
            let api = api.clone();
            let input = args.input.clone();
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(per_session);
                for _ in 0..per_session {
                    let t = Instant::now();
                    api.repl(&session, &input).await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            });
        }
        let mut latencies: Vec<Duration> = Vec::new();
        while let Some(result) = tasks.join_next().await {
            latencies.extend(result??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "{:>8} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>10.0}",
            level,
            latencies.len(),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().expect("at least one request")),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
        for session in sessions {
            api.close(&session).await?;
        }
    }
    Ok(())
}

/// Session creation over HTTP (store rows and a worker forked from a
/// prepared zygote), without libraries and with `--library`.
async fn session_creation(api: &Api, template: &str, args: &BenchArgs) -> anyhow::Result<()> {
    println!("\nsession create ({} each, sessions closed as they go)", args.creates);
    println!("{:>16} {:>9} {:>9} {:>9}", "libraries", "p50_ms", "p99_ms", "first_ms");
    let cached = api.client.catalog_libraries().await?.value.iter().any(|l| l.name == args.library && l.cached);
    let with_library = if cached { Some(api.template("bench-lib", &[&args.library], None).await?) } else { None };
    for (label, template) in [("none", Some(template.to_owned())), (args.library.as_str(), with_library.clone())] {
        let Some(template) = template else {
            println!("{label:>16} skipped: not in the daemon's cache (run `vm-system libs download {label}`)");
            continue;
        };
        let mut latencies = Vec::with_capacity(args.creates);
        for _ in 0..args.creates.max(1) {
            let t = Instant::now();
            let session = api.session(&template).await?;
            latencies.push(t.elapsed());
            api.close(&session).await?;
        }
        let first = latencies[0];
        latencies.sort();
        println!(
            "{label:>16} {:>9.3} {:>9.3} {:>9.3}",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(first)
        );
    }
    if let Some(template) = with_library {
        api.client.delete_template(&template).await?;
    }
    Ok(())
}

/// Resident memory of idle sessions, read from `/proc` (so only when the
/// daemon runs on this machine): each session is a keeper (PID 1 of its
/// namespaces), a live worker and a checkpoint. RSS counts the pages shared
/// with the zygote and each other, private is what each process really
/// costs; the last row adds a session's three processes up.
async fn idle_memory(api: &Api, template: &str, idle: usize) -> anyhow::Result<()> {
    println!("\nsession memory ({idle} sessions after `1 + 1`; workers trim after 1 s idle)");
    let before = session_processes();
    let mut sessions = Vec::new();
    for _ in 0..idle.max(1) {
        let session = api.session(template).await?;
        api.repl(&session, "1 + 1").await?;
        sessions.push(session);
    }
    let new: Vec<(i32, bool)> = session_processes().into_iter().filter(|p| !before.contains(p)).collect();
    let keepers: Vec<i32> = new.iter().filter(|(_, keeper)| *keeper).map(|p| p.0).collect();
    let workers: Vec<i32> = new.iter().filter(|(_, keeper)| !*keeper).map(|p| p.0).collect();
    if keepers.is_empty() {
        println!("  skipped: no worker processes of this daemon are visible in /proc (is it on another machine?)");
    } else {
        println!("{:>34} {:>9} {:>10} {:>12} {:>8}", "when", "processes", "rss_mb", "private_mb", "pss_mb");
        memory_row("right after the job: keepers", &keepers);
        memory_row("live workers and checkpoints", &workers);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        memory_row("idle for 2 s: keepers", &keepers);
        memory_row("live workers and checkpoints", &workers);
        let all: Vec<i32> = keepers.iter().chain(&workers).copied().collect();
        let private: u64 = all.iter().filter_map(|pid| private_kib(*pid)).sum();
        let pss: u64 = all.iter().filter_map(|pid| kib(*pid, "/smaps_rollup", "Pss:")).sum();
        let per = keepers.len().max(1) as f64 * 1024.0;
        println!(
            "{:>34} {:>9} {:>10} {:>12.2} {:>8.2}",
            "per session (sum)",
            "",
            "",
            private as f64 / per,
            pss as f64 / per
        );
    }
    for session in sessions {
        api.close(&session).await?;
    }
    Ok(())
}

/// Median RSS, private (unshared) and proportional memory of `workers`.
fn memory_row(when: &str, workers: &[i32]) {
    let mut rss: Vec<u64> = workers.iter().filter_map(|pid| kib(*pid, "/status", "VmRSS:")).collect();
    let mut private: Vec<u64> = workers.iter().filter_map(|pid| private_kib(*pid)).collect();
    let mut pss: Vec<u64> = workers.iter().filter_map(|pid| kib(*pid, "/smaps_rollup", "Pss:")).collect();
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).map_or(0.0, |k| *k as f64 / 1024.0)
    };
    println!(
        "{when:>34} {:>9} {:>10.2} {:>12.2} {:>8.2}",
        workers.len(),
        median(&mut rss),
        median(&mut private),
        median(&mut pss)
    );
}

/// A burst of console events: the HTTP round trip (with storing every
/// event) and the execution's own duration.
async fn console_bursts(api: &Api, args: &BenchArgs) -> anyhow::Result<()> {
    let limits = LimitsBody { max_events: Some(args.events.max(1) as u64), ..LimitsBody::default() };
    let settings = SettingsBody { limits: Some(limits), ..SettingsBody::default() };
    let template = api.template("bench-events", &[], Some(settings)).await?;
    let session = api.session(&template).await?;
    let input = format!("for (let i = 0; i < {}; i++) console.log('event', i)", args.events);
    println!("\nconsole capture ({} events per execution, {} executions)", args.events, args.bursts);
    let mut round_trips = Vec::new();
    let mut durations = Vec::new();
    for _ in 0..args.bursts.max(1) {
        let t = Instant::now();
        let done = api.repl(&session, &input).await?;
        round_trips.push(t.elapsed());
        durations.push(Duration::from_millis(done.execution.metrics.duration_ms));
        let count = done.execution.metrics.event_count;
        if count != args.events as u64 + 2 {
            bail!("expected {} events, the execution recorded {count}", args.events + 2);
        }
    }
    round_trips.sort();
    durations.sort();
    println!("{:>16} {:>20}", "round_trip_p50_ms", "execution_p50_ms");
    println!("{:>16.3} {:>20.3}", ms(percentile(&round_trips, 0.50)), ms(percentile(&durations, 0.50)));
    api.close(&session).await?;
    api.client.delete_template(&template).await?;
    Ok(())
}

impl Api {
    async fn template(&self, name: &str, libraries: &[&str], settings: Option<SettingsBody>) -> anyhow::Result<String> {
        let body = CreateTemplateBody {
            name: name.to_owned(),
            engine: None,
            settings,
            exposed_modules: None,
            libraries: Some(libraries.iter().map(|l| (*l).to_owned()).collect()),
        };
        Ok(self.client.create_template(&body).await?.value.template.id.to_string())
    }

    async fn session(&self, template: &str) -> anyhow::Result<String> {
        let body = CreateSessionBody {
            template_id: template.parse()?,
            workspace_id: "bench".into(),
            base_commit_oid: "bench".into(),
            worktree_path: self.worktree.clone(),
        };
        let session = match &self.creator {
            Some(creator) => creator.create_session(&body, true).await?,
            None => self.client.create_session(&body, false).await?,
        };
        Ok(session.value.id.to_string())
    }

    async fn close(&self, session: &str) -> anyhow::Result<()> {
        self.client.close_session(session).await?;
        Ok(())
    }

    /// Submits a snippet without waiting; returns the execution's id.
    async fn submit(&self, session: &str, input: &str) -> anyhow::Result<String> {
        let body = ReplBody { session_id: session.parse()?, input: input.to_owned(), wait: Some(false) };
        Ok(self.client.submit_repl(&body).await?.value.id.to_string())
    }

    async fn repl(&self, session: &str, input: &str) -> anyhow::Result<ExecutionWithEventsView> {
        let body = ReplBody { session_id: session.parse()?, input: input.to_owned(), wait: None };
        let done = self.client.repl(&body).await?;
        if done.value.execution.status != ExecutionStatusView::Ok {
            bail!("the bench snippet did not end ok: {}", done.raw);
        }
        Ok(done.value)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Session processes on this machine, each with whether it is a keeper
/// (a zygote's child) rather than a live worker or checkpoint (a keeper's
/// child). Zygotes are the processes started as `__vm-worker zygote`.
fn session_processes() -> HashSet<(i32, bool)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashSet::new() };
    let processes: Vec<(i32, i32, bool)> = entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid: i32 = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let zygote = String::from_utf8_lossy(&cmdline).contains("__vm-worker");
            Some((pid, ppid, zygote))
        })
        .collect();
    let workerish: HashSet<i32> = processes.iter().filter(|p| p.2).map(|p| p.0).collect();
    // A forked process keeps its zygote's command line: a zygote is the one
    // whose parent is not such a process.
    let zygotes: HashSet<i32> = processes.iter().filter(|p| p.2 && !workerish.contains(&p.1)).map(|p| p.0).collect();
    let keepers: HashSet<i32> = processes.iter().filter(|(_, ppid, _)| zygotes.contains(ppid)).map(|p| p.0).collect();
    let workers = processes.iter().filter(|(_, ppid, _)| keepers.contains(ppid)).map(|p| (p.0, false));
    keepers.iter().map(|pid| (*pid, true)).chain(workers).collect()
}

/// A `kB` figure from a `/proc/<pid>` file.
fn kib(pid: i32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}{file}")).ok()?;
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn private_kib(pid: i32) -> Option<u64> {
    Some(kib(pid, "/smaps_rollup", "Private_Clean:")? + kib(pid, "/smaps_rollup", "Private_Dirty:")?)
}
