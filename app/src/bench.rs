//! `vm-system bench`: REPL round-trip latency over HTTP (p50/p99) and
//! executions per second for a set of concurrency levels, measured against a
//! running daemon through its public API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

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
}

pub async fn run(server_url: &str, args: BenchArgs) -> anyhow::Result<()> {
    let api = format!("{}/api/v1", server_url.trim_end_matches('/'));
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let worktree = match args.worktree {
        Some(path) => path,
        None => std::env::current_dir()?,
    };
    let worktree = worktree.canonicalize().context("the bench worktree must exist")?;
    let template = call(&http, "POST", &format!("{api}/templates"), Some(json!({ "name": "bench" }))).await?;
    let template_id = template["id"].as_str().context("template id")?.to_owned();

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
            let body = json!({
                "template_id": template_id,
                "workspace_id": "bench",
                "base_commit_oid": "bench",
                "worktree_path": worktree.to_string_lossy(),
            });
            let session = call(&http, "POST", &format!("{api}/sessions"), Some(body)).await?;
            sessions.push(session["id"].as_str().context("session id")?.to_owned());
        }
        for session in &sessions {
            for _ in 0..20 {
                repl(&http, &api, session, &args.input).await?;
            }
        }
        let per_session = (args.requests / level).max(1);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for session in sessions.clone() {
            let (http, api, input) = (http.clone(), api.clone(), args.input.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(per_session);
                for _ in 0..per_session {
                    let t = Instant::now();
                    repl(&http, &api, &session, &input).await?;
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
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:>8} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>10.0}",
            level,
            latencies.len(),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(*latencies.last().expect("at least one request")),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
        for session in sessions {
            call(&http, "POST", &format!("{api}/sessions/{session}/close"), Some(json!({}))).await?;
        }
    }
    call(&http, "DELETE", &format!("{api}/templates/{template_id}"), None).await?;
    Ok(())
}

async fn repl(http: &reqwest::Client, api: &str, session: &str, input: &str) -> anyhow::Result<()> {
    let done =
        call(http, "POST", &format!("{api}/executions/repl"), Some(json!({ "session_id": session, "input": input })))
            .await?;
    if done["status"] != "ok" {
        bail!("the bench snippet did not end ok: {done}");
    }
    Ok(())
}

async fn call(http: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut request = http.request(method.parse()?, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("cannot reach the daemon at {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{method} {url} answered {status}: {text}");
    }
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}
