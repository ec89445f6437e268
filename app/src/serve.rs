//! `vm-system serve`: opens the store, reconciles what a previous process
//! left, wires adapters into the domain services and serves HTTP until
//! Ctrl+C or SIGTERM, then drains (see `shutdown`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use vm_domain::node::NodeConfig;
use vm_domain::paths::WorktreePolicy;
use vm_domain::services::Heartbeat;
use vm_http::clock::SystemClock;
use vm_http::{Access, AuthMode, Services, StorePorts};
use vm_runtime_boa::sandbox::SandboxMode;
use vm_runtime_boa::{BoaRuntime, FsLibraryCache};
use vm_store::Database;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// A SQLite file or a `postgres://` URL; shown without its password.
    pub db: Database,
    pub cache_dir: PathBuf,
    pub sandbox: SandboxMode,
    /// How long running executions may go on after a stop signal.
    pub shutdown_timeout: Duration,
    pub security: SecurityArgs,
    pub node: NodeArgs,
}

/// The flags of `serve` that place the daemon among the nodes sharing its
/// database (`vm-system help operations`, "Several nodes").
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The URL other nodes reach this daemon at, to forward requests for its sessions.
    /// [default: http://<the listen address>]
    #[arg(long, value_name = "URL", value_parser = parse_advertise_url)]
    pub advertise_url: Option<String>,
    /// Live sessions this node runs at once; a create or fork past it is 503 NO_CAPACITY.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,
    /// How long this node's lease lasts unless renewed (every quarter of it). A node whose lease
    /// runs out is lost: another node fails its sessions over.
    #[arg(long, default_value = "10s", value_parser = parse_lease)]
    pub node_lease: Duration,
}

/// `http://HOST:PORT` without a trailing slash; anything else is refused.
fn parse_advertise_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']) => Ok(url.to_owned()),
        _ => Err(format!("{raw:?} is not a URL like http://10.0.0.5:3210 (http, host and port only)")),
    }
}

fn parse_lease(raw: &str) -> Result<Duration, String> {
    let lease = humantime::parse_duration(raw).map_err(|err| err.to_string())?;
    if lease < Duration::from_secs(1) {
        return Err("the lease must be 1s or longer".to_owned());
    }
    Ok(lease)
}

/// The URL this node is reached at: `--advertise-url`, or the address it
/// listens on. Listening on every interface needs an `--advertise-url`
/// when other nodes may share the database.
fn advertise_url(config: &ServeConfig, local: SocketAddr) -> anyhow::Result<String> {
    if let Some(url) = &config.node.advertise_url {
        let url = url.trim().trim_end_matches('/');
        let rest =
            url.strip_prefix("http://").filter(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']));
        if rest.is_none() {
            anyhow::bail!("--advertise-url {url:?} is not a URL like http://10.0.0.5:3210 (http, host and port only)");
        }
        return Ok(url.to_owned());
    }
    if !local.ip().is_unspecified() {
        return Ok(format!("http://{local}"));
    }
    match &config.db {
        Database::Sqlite(_) => Ok(format!("http://127.0.0.1:{}", local.port())),
        Database::Postgres(_) => anyhow::bail!(
            "listening on {local} on PostgreSQL needs --advertise-url: the other nodes must know which address reaches this one"
        ),
    }
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthSwitch {
    On,
    Off,
}

/// The flags of `serve` that guard the API: tokens, hosts, origins,
/// worktree roots and connection limits.
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// Require a bearer token on every /api/v1 route but /health. `off` is
    /// refused unless the daemon listens on a loopback address, and is logged
    /// loudly.
    #[arg(long, value_enum, default_value_t = AuthSwitch::On)]
    pub auth: AuthSwitch,
    /// A file holding a secret (32+ characters) that becomes a valid admin
    /// token, for automation; no bootstrap token is made then.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The daemon's data directory: the bootstrap admin token is written to
    /// `admin-token-<PORT>` there, readable only by this user.
    /// [default: $XDG_DATA_HOME/vm-system or ~/.local/share/vm-system]
    #[arg(long, env = "VM_SYSTEM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A host name (or IP) clients may use in the Host header, besides the
    /// listen address and localhost; repeatable. Needed behind a reverse proxy
    /// that keeps the public host name.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// A browser origin (e.g. https://ui.example.com) allowed to send
    /// state-changing requests and to read responses through CORS; repeatable.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A directory under which session worktrees may be; repeatable.
    /// [default: the home directory of the daemon's user]
    #[arg(long = "worktree-root", value_name = "DIR")]
    pub worktree_roots: Vec<PathBuf>,
    /// Time a client has to send a request's header (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may stay idle between requests.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Time a client has to send a request's body once its header is in.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,
    /// Connections served at once; past it, new ones wait in the listen backlog.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl SecurityArgs {
    pub fn connection_limits(&self) -> vm_http::server::ConnectionLimits {
        vm_http::server::ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_read_timeout,
            max_connections: self.max_connections as usize,
        }
    }
}

/// `--sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxSwitch {
    On,
    Off,
}

/// The sandbox `--sandbox` and `--sandbox-user` ask for. A root daemon's
/// sessions run as the sandbox user, which must exist and not be root.
pub fn sandbox_mode(switch: SandboxSwitch, user: &str) -> anyhow::Result<SandboxMode> {
    match switch {
        SandboxSwitch::Off => Ok(SandboxMode::Off),
        SandboxSwitch::On => Ok(SandboxMode::on(user)?),
    }
}

/// Builds the services over a store (SQLite file or PostgreSQL database)
/// and a library cache. A store that cannot be opened is one sentence
/// naming the file or the server's host and port.
pub async fn services(
    db: &Database,
    cache_dir: PathBuf,
    sandbox: SandboxMode,
    worktrees: WorktreePolicy,
    node: NodeConfig,
) -> anyhow::Result<Arc<Services>> {
    match sandbox {
        SandboxMode::Off => tracing::warn!(
            "SANDBOX OFF (--sandbox=off): session code and the programs it runs have the daemon's own rights \
             over files, processes and the network; use this only on a trusted machine"
        ),
        SandboxMode::On { run_as } => {
            vm_runtime_boa::sandbox::check(sandbox).map_err(|err| {
                anyhow::anyhow!("{err}; sessions cannot be confined on this machine (see `vm-system help security`; --sandbox=off runs them unconfined)")
            })?;
            match run_as {
                Some(user) => {
                    tracing::info!(uid = user.uid, gid = user.gid, "sandbox on: sessions run as an unprivileged user")
                }
                None => tracing::info!("sandbox on: sessions run in user namespaces of their own"),
            }
        }
    }
    // Before the store and the services are built: they describe their metrics then.
    vm_http::metrics::install_recorder();
    let store = vm_store::open(db).await?;
    let boa = Arc::new(BoaRuntime::new(cache_dir.clone(), sandbox));
    if let Err(err) = boa.warm_up().await {
        tracing::warn!(error = %err, "cannot prepare a worker ahead of the first session");
    }
    if sandbox.is_on() {
        boa.probe().await.map_err(|err| {
            anyhow::anyhow!("a test session could not start in the sandbox: {err} (see `vm-system help security`; --sandbox=off runs sessions unconfined)")
        })?;
    }
    let stores = StorePorts {
        templates: store.templates,
        sessions: store.sessions,
        executions: store.executions,
        tokens: store.tokens,
        nodes: store.nodes,
        health: store.health,
    };
    let cache = Arc::new(FsLibraryCache::new(cache_dir));
    let services = Services::new(stores, boa, cache, Arc::new(SystemClock), worktrees, node);
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let report = services.nodes.join(&secret).await.context("cannot join the database as a node")?;
    if report.closed_sessions + report.finalised_executions > 0 {
        tracing::warn!(
            closed_sessions = report.closed_sessions,
            finalised_executions = report.finalised_executions,
            "reconciled what nodes that are gone left behind"
        );
    }
    let config = services.nodes.config();
    tracing::info!(
        node_id = %services.nodes.id(),
        url = config.url,
        max_sessions = config.max_sessions,
        lease = ?config.lease,
        "joined as a node"
    );
    Ok(Arc::new(services))
}

/// The worktree rules of this daemon: inside `--worktree-root`s (the home
/// directory by default), never its data or cache directory or database.
fn worktree_policy(config: &ServeConfig, data_dir: &std::path::Path) -> anyhow::Result<WorktreePolicy> {
    let roots = if config.security.worktree_roots.is_empty() {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        vec![home.ok_or_else(|| anyhow::anyhow!("HOME is not set: name the worktree roots with --worktree-root"))?]
    } else {
        config.security.worktree_roots.clone()
    };
    let mut reserved = vec![data_dir.to_path_buf(), config.cache_dir.clone()];
    if let Database::Sqlite(file) = &config.db {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        reserved.push(file);
    }
    WorktreePolicy::new(&roots, &reserved).map_err(|err| anyhow::anyhow!("{err} (--worktree-root)"))
}

/// `--auth`, `--allowed-host` and `--allowed-origin` as the guard's rules;
/// authentication off is refused unless the daemon listens on loopback.
fn access(config: &ServeConfig) -> anyhow::Result<Access> {
    let security = &config.security;
    let auth = match security.auth {
        AuthSwitch::On => AuthMode::Required,
        AuthSwitch::Off if !config.listen.ip().is_loopback() => anyhow::bail!(
            "--auth=off is refused on {}: without tokens only a loopback address (127.0.0.1, ::1) may be served",
            config.listen
        ),
        AuthSwitch::Off => {
            tracing::warn!(
                "AUTH OFF (--auth=off): every local program and user that can reach {} may use the whole API without a token",
                config.listen
            );
            AuthMode::Off
        }
    };
    if auth == AuthMode::Off && security.admin_token_file.is_some() {
        anyhow::bail!("--admin-token-file has no use with --auth=off");
    }
    // Requests forwarded by other nodes name this node as they reach it.
    let mut hosts = security.allowed_hosts.clone();
    if let Some(host) = config.node.advertise_url.as_deref().and_then(|url| url.strip_prefix("http://")) {
        hosts.push(host.to_owned());
    }
    Access::new(auth, config.listen, &hosts, &security.allowed_origins).map_err(anyhow::Error::msg)
}

pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let access = access(&config)?;
    let admin_token_file =
        config.security.admin_token_file.as_deref().map(crate::auth::AdminTokenFile::read).transpose()?;
    let data_dir = config.security.data_dir.clone().unwrap_or_else(crate::auth::default_data_dir);
    let worktrees = worktree_policy(&config, &data_dir)?;
    let lock = match &config.db {
        Database::Sqlite(file) => Some(crate::db_lock::DbLock::acquire(file)?),
        Database::Postgres(_) => None,
    };
    match vm_http::server::raise_open_file_limit() {
        Ok((before, after)) => tracing::info!(before, after, "open-file limit (soft RLIMIT_NOFILE) raised to hard"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit; fewer connections can be served"),
    }
    let listener =
        vm_http::server::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().unwrap_or(config.listen);
    let node = NodeConfig {
        url: advertise_url(&config, local)?,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        max_sessions: config.node.max_sessions,
        lease: config.node.node_lease,
        exclusive: lock.is_some(),
    };
    if let Some(lock) = &lock {
        lock.describe(&node.url);
    }
    let services = services(&config.db, config.cache_dir.clone(), config.sandbox, worktrees, node).await?;
    let watcher = tokio::spawn(notice_lost_runtimes(services.clone()));
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
    let lease = tokio::spawn(keep_lease(services.clone(), lost_tx));
    tracing::info!(db = %config.db, backend = config.db.backend(), cache_dir = %config.cache_dir.display(), "store ready");
    if !crate::ui_assets::is_built() {
        tracing::warn!("the web UI is not built into this binary; / says how to build it (the API works as ever)");
    }
    if access.auth == AuthMode::Required {
        crate::auth::prepare_tokens(&services.tokens, admin_token_file.as_ref(), &data_dir, local).await?;
    }
    // Registered before the address is announced, so that a SIGTERM sent as
    // soon as the daemon says it listens stops it gracefully.
    let signals = crate::shutdown::Signals::install().context("cannot install the SIGTERM and SIGINT handlers")?;
    println!("vm-system listening on http://{local}");
    std::io::stdout().flush().ok();
    let server = vm_http::server::serve(
        listener,
        vm_http::app(services.clone(), access, Some(crate::ui_assets::endpoint())),
        config.security.connection_limits(),
        crate::shutdown::drained(&signals, &services.executions, config.shutdown_timeout),
        Duration::from_secs(5),
    );
    tokio::select! {
        served = server => served.context("the HTTP server failed")?,
        () = signals.received(2) => {
            let running = services.executions.running_here();
            tracing::warn!(running, "stopped at once: executions still running are finalised as interrupted");
        }
        Ok(()) = lost_rx => {
            watcher.abort();
            anyhow::bail!(
                "this node's lease ran out before it could renew it (cut off from the database?) and another node \
                 failed its sessions over; stopping so that a supervisor starts it again as a new node"
            );
        }
    }
    lease.abort();
    match tokio::time::timeout(Duration::from_secs(5), services.nodes.leave()).await {
        Ok(Ok(report)) => tracing::info!(closed_sessions = report.closed_sessions, "left the nodes"),
        Ok(Err(err)) => tracing::warn!(error = %err, "cannot mark this node gone; the others wait for its lease"),
        Err(_) => tracing::warn!("marking this node gone took too long; the others wait for its lease"),
    }
    watcher.abort();
    drop(lock);
    tracing::info!("stopped");
    Ok(())
}

/// While the daemon serves: renews this node's lease and fails over the
/// nodes whose lease ran out. Says on `lost` when another node found this
/// one lost, then ends.
async fn keep_lease(services: Arc<Services>, lost: tokio::sync::oneshot::Sender<()>) {
    let every = services.nodes.config().heartbeat();
    loop {
        tokio::time::sleep(every).await;
        match services.nodes.heartbeat().await {
            Ok(Heartbeat::Renewed { lost_nodes, released }) => {
                if !lost_nodes.is_empty() {
                    tracing::warn!(
                        nodes = ?lost_nodes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        crashed_sessions = released.closed_sessions,
                        cancelled_executions = released.finalised_executions,
                        "failed over the sessions of lost nodes"
                    );
                }
            }
            Ok(Heartbeat::Lost) => {
                tracing::error!("another node found this node lost: its lease ran out before it was renewed");
                let _ = lost.send(());
                return;
            }
            Err(err) => tracing::warn!(error = %err, "cannot renew this node's lease; trying again"),
        }
    }
}

/// While the daemon serves: each runtime that dies on its own while idle
/// (killed from outside, crashed) leaves its session `crashed` at once, so
/// the next call to it is refused with `SESSION_NOT_READY`.
async fn notice_lost_runtimes(services: Arc<Services>) {
    loop {
        match services.sessions.notice_next_lost_runtime().await {
            Ok(Some(session)) => tracing::warn!(
                session_id = %session.id,
                reason = session.last_error.as_deref().unwrap_or_default(),
                "session crashed: its runtime died while idle"
            ),
            Ok(None) => {}
            Err(err) => {
                tracing::error!(error = %err, "cannot mark a session crashed after its runtime died while idle")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        security: SecurityArgs,
        #[command(flatten)]
        node: NodeArgs,
    }

    fn config(args: &[&str]) -> ServeConfig {
        let flags = Flags::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).expect("valid flags");
        ServeConfig {
            listen: "127.0.0.1:3210".parse().unwrap(),
            db: "postgres://vm@db:5432/vm".parse().unwrap(),
            cache_dir: PathBuf::from("/tmp/cache"),
            sandbox: SandboxMode::Off,
            shutdown_timeout: Duration::from_secs(1),
            security: flags.security,
            node: flags.node,
        }
    }

    #[test]
    fn the_advertised_host_is_served_so_that_forwarded_requests_reach_this_node() {
        let config = config(&["--advertise-url", "http://vm-node-2.internal:3210/"]);
        assert_eq!(advertise_url(&config, config.listen).unwrap(), "http://vm-node-2.internal:3210");
        let access = access(&config).unwrap();
        assert!(access.hosts.allows("vm-node-2.internal:3210"));
        assert!(!access.hosts.allows("vm-node-3.internal:3210"));
    }

    #[test]
    fn only_a_plain_http_host_and_port_can_be_advertised_and_a_lease_is_a_second_or_more() {
        for bad in ["https://a:1", "http://", "http://a:1/path", "ftp://a", "http://u@a:1"] {
            let parsed = Flags::try_parse_from(["serve", "--advertise-url", bad]);
            assert!(parsed.is_err(), "{bad} was accepted");
        }
        assert!(Flags::try_parse_from(["serve", "--node-lease", "500ms"]).is_err());
        assert_eq!(config(&["--node-lease", "2s"]).node.node_lease, Duration::from_secs(2));
    }

    #[test]
    fn listening_on_every_interface_on_postgresql_needs_an_advertised_url() {
        let mut config = config(&[]);
        config.listen = "0.0.0.0:3210".parse().unwrap();
        let err = advertise_url(&config, config.listen).unwrap_err().to_string();
        assert!(err.contains("--advertise-url"), "{err}");
        config.db = "/tmp/x.db".parse().unwrap();
        assert_eq!(advertise_url(&config, config.listen).unwrap(), "http://127.0.0.1:3210");
    }
}
