//! `vm-system session …`: start sessions from templates, list, inspect,
//! fork and close them.

use std::path::PathBuf;
use uuid::Uuid;

use clap::{Args, Subcommand};
use vm_http::dto::{CreateSessionBody, SessionStatusView, SessionView};

use super::output::{block, or_dash, time, time_or_dash, Ctx, Failure, Outcome, Table};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Start a session from a template, bound to a worktree directory.
    Create(CreateArgs),
    /// List sessions, newest first.
    List {
        /// Only sessions in this state.
        #[arg(long, value_parser = ["starting", "ready", "crashed", "closed"])]
        status: Option<String>,
    },
    /// Show one session.
    Get {
        /// The session's id.
        #[arg(value_name = "SESSION", value_parser = super::id)]
        session: String,
    },
    /// Start a new session as a copy of a ready, idle session's live heap.
    ///
    /// Every variable, function and loaded module is copied; the new session has the same
    /// template and worktree, records `forked_from`, and from then on each goes its own way.
    Fork {
        /// The session to copy.
        #[arg(value_name = "SESSION", value_parser = super::id)]
        session: String,
    },
    /// Discard the session's runtime and keep its record; closing twice is harmless.
    Close {
        /// The session's id.
        #[arg(value_name = "SESSION", value_parser = super::id)]
        session: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The template to start from.
    #[arg(long, value_name = "TEMPLATE", value_parser = super::uuid)]
    template_id: Uuid,
    /// Directory the session's files are relative to [default: the current directory].
    #[arg(long, value_name = "DIR")]
    worktree_path: Option<PathBuf>,
    /// Which workspace this worktree belongs to [default: the worktree directory's name].
    #[arg(long, value_name = "ID")]
    workspace_id: Option<String>,
    /// The commit the worktree was made from.
    #[arg(long, value_name = "OID", default_value = "HEAD")]
    base_commit_oid: String,
    /// Which node runs the session when several share the database: `auto`, the one with the
    /// most free capacity; `local`, the node this command talks to.
    #[arg(long, value_enum, default_value_t = Placement::Auto)]
    placement: Placement,
}

/// `--placement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    Auto,
    Local,
}

pub async fn run(ctx: &Ctx, command: SessionCommand) -> Outcome {
    let client = &ctx.client;
    match command {
        SessionCommand::Create(args) => {
            let worktree = absolute_worktree(args.worktree_path)?;
            let workspace_id = args.workspace_id.unwrap_or_else(|| {
                worktree.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "default".into())
            });
            let body = CreateSessionBody {
                template_id: args.template_id,
                workspace_id,
                base_commit_oid: args.base_commit_oid,
                worktree_path: worktree.to_string_lossy().into_owned(),
            };
            let reply = client.create_session(&body, args.placement == Placement::Local).await?;
            ctx.show(&reply.raw, || session_text(&reply.value), || vec![reply.value.id.to_string()])
        }
        SessionCommand::List { status } => {
            let reply = client.sessions(status.as_deref()).await?;
            ctx.show(
                &reply.raw,
                || sessions_table(&reply.value),
                || reply.value.iter().map(|s| s.id.to_string()).collect(),
            )
        }
        SessionCommand::Get { session } => {
            let reply = client.session(&session).await?;
            ctx.show(&reply.raw, || session_text(&reply.value), || vec![reply.value.id.to_string()])
        }
        SessionCommand::Fork { session } => {
            let reply = client.fork_session(&session).await?;
            ctx.show(&reply.raw, || session_text(&reply.value), || vec![reply.value.id.to_string()])
        }
        SessionCommand::Close { session } => {
            let reply = client.close_session(&session).await?;
            ctx.show(&reply.raw, || session_text(&reply.value), || vec![reply.value.id.to_string()])
        }
    }
}

/// `--worktree-path` (or the current directory) made absolute, with
/// symlinks resolved when the directory exists; the daemon checks the rest.
fn absolute_worktree(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_dir()
            .map_err(|err| Failure::Usage(format!("cannot read the current directory: {err}")))?,
    };
    if let Ok(canonical) = path.canonicalize() {
        return Ok(canonical);
    }
    std::path::absolute(&path).map_err(|err| Failure::Usage(format!("invalid worktree path {}: {err}", path.display())))
}

pub fn status_name(status: SessionStatusView) -> &'static str {
    match status {
        SessionStatusView::Starting => "starting",
        SessionStatusView::Ready => "ready",
        SessionStatusView::Crashed => "crashed",
        SessionStatusView::Closed => "closed",
    }
}

pub(super) fn session_text(s: &SessionView) -> String {
    block(&[
        ("id", s.id.to_string()),
        ("template", s.template_id.to_string()),
        ("status", status_name(s.status).into()),
        ("workspace", s.workspace_id.clone()),
        ("base commit", s.base_commit_oid.clone()),
        ("worktree", s.worktree_path.clone()),
        ("created", time(&s.created_at)),
        ("closed", time_or_dash(&s.closed_at)),
        ("last error", or_dash(&s.last_error)),
        ("forked from", or_dash(&s.forked_from.map(|id| id.to_string()))),
        ("node", or_dash(&s.node_id.map(|id| id.to_string()))),
    ])
}

fn sessions_table(sessions: &[SessionView]) -> String {
    let mut table = Table::new(&["ID", "TEMPLATE", "STATUS", "WORKSPACE", "CREATED", "FORKED-FROM", "WORKTREE"]);
    for s in sessions {
        table.row(vec![
            s.id.to_string(),
            s.template_id.to_string(),
            status_name(s.status).into(),
            s.workspace_id.clone(),
            time(&s.created_at),
            or_dash(&s.forked_from.map(|id| id.to_string())),
            s.worktree_path.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_relative_worktree_path_is_made_absolute() {
        let dir = std::env::temp_dir();
        let made = absolute_worktree(Some(PathBuf::from("."))).unwrap();
        assert!(made.is_absolute());
        assert_eq!(absolute_worktree(Some(dir.clone())).unwrap(), dir.canonicalize().unwrap());
        let missing = absolute_worktree(Some(PathBuf::from("no/such/dir"))).unwrap();
        assert!(missing.is_absolute() && missing.ends_with(Path::new("no/such/dir")));
    }
}
