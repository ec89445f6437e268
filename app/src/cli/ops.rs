//! `vm-system ops …`: is the daemon up, can it serve (its store answers, a
//! session could start, it is not draining), and which runtimes are alive in it.

use clap::Subcommand;

use super::output::{block, list, Ctx, Outcome};

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
    }
}
