//! `vm-system ops …`: is the daemon up, and which runtimes are alive in it.

use clap::Subcommand;

use super::output::{block, list, Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Ask whether the daemon answers; prints `ok`.
    Health,
    /// Sessions whose runtime is alive in the daemon's memory.
    RuntimeSummary,
}

pub async fn run(ctx: &Ctx, command: OpsCommand) -> Outcome {
    match command {
        OpsCommand::Health => {
            let reply = ctx.client.health().await?;
            ctx.show(&reply.raw, || format!("{}\n", reply.value.status), Vec::new)
        }
        OpsCommand::RuntimeSummary => {
            let reply = ctx.client.runtime_summary().await?;
            let summary = &reply.value;
            ctx.show(
                &reply.raw,
                || {
                    block(&[
                        ("active sessions", summary.active_sessions.to_string()),
                        ("session ids", list(&summary.active_session_ids)),
                    ])
                },
                || summary.active_session_ids.clone(),
            )
        }
    }
}
