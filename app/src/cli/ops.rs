//! `vm-system ops …`: is the daemon up, can it serve (its store answers, a
//! session could start, it is not draining), which runtimes are alive in it,
//! and which daemons (nodes) share its database.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use vm_http::dto::{NodeStatusView, NodeView};

use super::output::{block, list, Ctx, Outcome, Table};

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Ask whether the daemon answers (liveness); prints `ok`.
    Health,
    /// Ask whether the daemon can serve (readiness): its store answers within 2 s, a session
    /// could start and it is not draining before a stop. Fails with SHUTTING_DOWN,
    /// STORE_UNAVAILABLE or RUNTIME_UNAVAILABLE when not.
    Ready,
    /// Sessions whose runtime is alive in the daemon's memory.
    RuntimeSummary,
    /// The daemons (nodes) sharing the database: their load, heartbeat and version.
    ///
    /// Live nodes first, then lost ones, newest first; "(this)" marks the node that answered.
    ///
    /// SESSIONS is active/max; HEARTBEAT is the age of the node's last lease renewal.
    Nodes,
}

pub async fn run(ctx: &Ctx, command: OpsCommand) -> Outcome {
    match command {
        OpsCommand::Health => {
            let reply = ctx.client.health().await?;
            ctx.show(&reply.raw, || format!("{}\n", reply.value.status), Vec::new)
        }
        OpsCommand::Ready => {
            let reply = ctx.client.ready().await?;
            let ready = &reply.value;
            ctx.show(
                &reply.raw,
                || {
                    block(&[
                        ("status", ready.status.clone()),
                        ("store", ready.store.clone()),
                        ("runtime", ready.runtime.clone()),
                        ("pending writes", ready.pending_writes.to_string()),
                    ])
                },
                Vec::new,
            )
        }
        OpsCommand::RuntimeSummary => {
            let reply = ctx.client.runtime_summary().await?;
            let summary = &reply.value;
            ctx.show(
                &reply.raw,
                || {
                    block(&[
                        ("active sessions", summary.active_sessions.to_string()),
                        (
                            "session ids",
                            list(&summary.active_session_ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
                        ),
                    ])
                },
                || summary.active_session_ids.iter().map(ToString::to_string).collect(),
            )
        }
        OpsCommand::Nodes => {
            let reply = ctx.client.nodes().await?;
            ctx.show(
                &reply.raw,
                || nodes_table(&reply.value, Utc::now()),
                || reply.value.iter().map(|n| n.id.to_string()).collect(),
            )
        }
    }
}

fn node_status(status: NodeStatusView) -> &'static str {
    match status {
        NodeStatusView::Live => "live",
        NodeStatusView::Lost => "lost",
    }
}

/// How long before `now` the instant `at` was, in the largest whole unit that keeps the number
/// small: `2s ago`, `5m ago`, `3h ago`, `2d ago`; `in 2s` when `at` is ahead of this machine's
/// clock (the clocks disagree).
fn age(at: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - *at).num_seconds();
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..120 => format!("{magnitude}s"),
        120..7_200 => format!("{}m", magnitude / 60),
        7_200..172_800 => format!("{}h", magnitude / 3_600),
        _ => format!("{}d", magnitude / 86_400),
    };
    if seconds < 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn nodes_table(nodes: &[NodeView], now: DateTime<Utc>) -> String {
    let mut table = Table::new(&["ID", "URL", "STATUS", "SESSIONS", "HEARTBEAT", "VERSION", ""]);
    for n in nodes {
        table.row(vec![
            n.id.to_string(),
            n.url.clone(),
            node_status(n.status).into(),
            format!("{}/{}", n.active_sessions, n.max_sessions),
            age(&n.heartbeat_at, now),
            n.version.clone(),
            if n.this_node { "(this)".into() } else { String::new() },
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    #[test]
    fn heartbeat_ages_are_short_and_say_when_the_clocks_disagree() {
        let now = at("2030-01-01T12:00:00Z");
        assert_eq!(age(&at("2030-01-01T12:00:00Z"), now), "0s ago");
        assert_eq!(age(&at("2030-01-01T11:59:58Z"), now), "2s ago");
        assert_eq!(age(&at("2030-01-01T11:58:01Z"), now), "119s ago");
        assert_eq!(age(&at("2030-01-01T11:55:00Z"), now), "5m ago");
        assert_eq!(age(&at("2030-01-01T09:00:00Z"), now), "3h ago");
        assert_eq!(age(&at("2029-12-29T12:00:00Z"), now), "3d ago");
        assert_eq!(age(&at("2030-01-01T12:00:03Z"), now), "in 3s");
    }

    #[test]
    fn the_nodes_table_shows_sessions_as_active_of_max_and_marks_the_node_that_answered() {
        let node = |id: u128, url: &str, status: &str, this_node: bool, heartbeat: &str| -> NodeView {
            serde_json::from_value(serde_json::json!({
                "id": uuid::Uuid::from_u128(id), "url": url, "version": "0.1.0", "status": status,
                "this_node": this_node, "started_at": "2030-01-01T11:00:00Z", "heartbeat_at": heartbeat,
                "lease_expires_at": "2030-01-01T12:00:10Z",
                "lost_at": if status == "lost" { Value::from("2030-01-01T11:50:00Z") } else { Value::Null },
                "max_sessions": 64, "active_sessions": if status == "lost" { 0 } else { 3 },
            }))
            .expect("the documented NodeView shape")
        };
        let nodes = [
            node(1, "http://127.0.0.1:3211", "live", true, "2030-01-01T11:59:58Z"),
            node(2, "http://127.0.0.1:3212", "live", false, "2030-01-01T11:59:59Z"),
            node(3, "http://127.0.0.1:3213", "lost", false, "2030-01-01T11:49:50Z"),
        ];
        let table = nodes_table(&nodes, at("2030-01-01T12:00:00Z"));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "ID                                    URL                    STATUS  SESSIONS  HEARTBEAT  VERSION"
        );
        assert_eq!(
            lines[1],
            "00000000-0000-0000-0000-000000000001  http://127.0.0.1:3211  live    3/64      2s ago     0.1.0    (this)"
        );
        assert_eq!(
            lines[2],
            "00000000-0000-0000-0000-000000000002  http://127.0.0.1:3212  live    3/64      1s ago     0.1.0"
        );
        assert_eq!(
            lines[3],
            "00000000-0000-0000-0000-000000000003  http://127.0.0.1:3213  lost    0/64      10m ago    0.1.0"
        );
        assert_eq!(lines.len(), 4);
    }
}
