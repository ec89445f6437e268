//! `vm-system token …`: make, list, show and revoke API tokens (admin), and
//! `whoami`, the token this command sends. A new token's secret is printed
//! once, by `create`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use vm_http::dto::{CreateTokenBody, CreatedTokenView, ScopeView, TokenStatusView, TokenView, WhoAmIView};

use super::output::{block, list, time, time_or_dash, Ctx, Failure, Outcome, Table};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; prints its secret, which cannot be shown again (`-q`: only the secret).
    Create(CreateArgs),
    /// List tokens, revoked and expired ones included, newest first.
    List,
    /// Show one token (never its secret).
    // The id fields are not called `token`: that is the global `--token`'s id.
    Get {
        /// The token's id.
        #[arg(value_name = "TOKEN", value_parser = super::id)]
        id: String,
    },
    /// Revoke a token at once; it stays listed as revoked. Revoking twice is harmless.
    Revoke {
        /// The token's id.
        #[arg(value_name = "TOKEN", value_parser = super::id)]
        id: String,
    },
    /// Show the token this command sends: its name and scopes.
    Whoami,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the token is for: letters, digits, `.`, `_`, `-`, `@`, `:`.
    name: String,
    /// What it may do: read (every GET), execute (sessions and executions), admin
    /// (templates and tokens); each includes the ones before it. Repeat, or separate by commas.
    #[arg(long = "scope", value_name = "SCOPE", value_enum, value_delimiter = ',', required = true)]
    scopes: Vec<ScopeArg>,
    /// Stop working after this long, e.g. 30d, 12h, 90min [default: never].
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime, conflicts_with = "expires_at")]
    expires_in: Option<Duration>,
    /// Stop working at this time, RFC 3339, e.g. 2030-01-31T00:00:00Z [default: never].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    expires_at: Option<DateTime<Utc>>,
}

/// `--scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScopeArg {
    Read,
    Execute,
    Admin,
}

impl From<ScopeArg> for ScopeView {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::Read => Self::Read,
            ScopeArg::Execute => Self::Execute,
            ScopeArg::Admin => Self::Admin,
        }
    }
}

fn parse_lifetime(raw: &str) -> Result<Duration, String> {
    let lifetime = humantime::parse_duration(raw).map_err(|err| format!("{err} (e.g. 30d, 12h, 90min)"))?;
    if lifetime.is_zero() {
        return Err("a token must live longer than 0s".into());
    }
    Ok(lifetime)
}

fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| format!("not an RFC 3339 time ({err}), e.g. 2030-01-31T00:00:00Z"))
}

/// When a token made now with `--expires-in lifetime` stops working.
fn expiry_after(now: DateTime<Utc>, lifetime: Duration) -> Result<DateTime<Utc>, Failure> {
    chrono::Duration::from_std(lifetime)
        .ok()
        .and_then(|lifetime| now.checked_add_signed(lifetime))
        .ok_or_else(|| Failure::Usage(format!("--expires-in {} is too long", humantime::format_duration(lifetime))))
}

pub async fn run(ctx: &Ctx, command: TokenCommand) -> Outcome {
    let client = &ctx.client;
    match command {
        TokenCommand::Create(args) => {
            let expires_at = match (args.expires_in, args.expires_at) {
                (Some(lifetime), _) => Some(expiry_after(Utc::now(), lifetime)?),
                (None, at) => at,
            };
            let scopes = args.scopes.into_iter().map(ScopeView::from).collect();
            let reply = client.create_token(&CreateTokenBody { name: args.name, scopes, expires_at }).await?;
            ctx.show(&reply.raw, || created_text(&reply.value), || vec![reply.value.secret.clone()])
        }
        TokenCommand::List => {
            let reply = client.tokens().await?;
            ctx.show(
                &reply.raw,
                || tokens_table(&reply.value),
                || reply.value.iter().map(|t| t.id.to_string()).collect(),
            )
        }
        TokenCommand::Get { id } => {
            let reply = client.token(&id).await?;
            ctx.show(&reply.raw, || block(&token_pairs(&reply.value)), || vec![reply.value.id.to_string()])
        }
        TokenCommand::Revoke { id } => {
            let reply = client.revoke_token(&id).await?;
            ctx.show(&reply.raw, || block(&token_pairs(&reply.value)), || vec![reply.value.id.to_string()])
        }
        TokenCommand::Whoami => {
            let reply = client.whoami().await?;
            let me = &reply.value;
            ctx.show(
                &reply.raw,
                || whoami_text(me),
                || vec![me.token_id.map(|id| id.to_string()).unwrap_or_else(|| me.name.clone())],
            )
        }
    }
}

// ---------------------------------------------------------------- text

fn scope_name(scope: ScopeView) -> &'static str {
    match scope {
        ScopeView::Read => "read",
        ScopeView::Execute => "execute",
        ScopeView::Admin => "admin",
    }
}

fn scopes(scopes: &[ScopeView]) -> String {
    list(&scopes.iter().map(|s| scope_name(*s).to_owned()).collect::<Vec<_>>())
}

fn status_name(status: TokenStatusView) -> &'static str {
    match status {
        TokenStatusView::Active => "active",
        TokenStatusView::Expired => "expired",
        TokenStatusView::Revoked => "revoked",
    }
}

fn expires(at: &Option<DateTime<Utc>>) -> String {
    at.as_ref().map(time).unwrap_or_else(|| "never".into())
}

fn token_pairs(t: &TokenView) -> Vec<(&'static str, String)> {
    vec![
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("scopes", scopes(&t.scopes)),
        ("status", status_name(t.status).into()),
        ("created", time(&t.created_at)),
        ("last used", time_or_dash(&t.last_used_at)),
        ("expires", expires(&t.expires_at)),
        ("revoked", time_or_dash(&t.revoked_at)),
    ]
}

fn created_text(created: &CreatedTokenView) -> String {
    let mut pairs = token_pairs(&created.token);
    pairs.push(("secret", created.secret.clone()));
    format!(
        "{}\nThe secret is shown only this once: keep it now (e.g. export VM_SYSTEM_TOKEN=…); it cannot be read again.\n",
        block(&pairs)
    )
}

fn tokens_table(tokens: &[TokenView]) -> String {
    let mut table = Table::new(&["ID", "NAME", "SCOPES", "STATUS", "CREATED", "LAST-USED", "EXPIRES"]);
    for t in tokens {
        table.row(vec![
            t.id.to_string(),
            t.name.clone(),
            scopes(&t.scopes),
            status_name(t.status).into(),
            time(&t.created_at),
            time_or_dash(&t.last_used_at),
            expires(&t.expires_at),
        ]);
    }
    table.render()
}

fn whoami_text(me: &WhoAmIView) -> String {
    block(&[
        ("name", me.name.clone()),
        ("token", me.token_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into())),
        ("scopes", scopes(&me.scopes)),
    ])
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TokenCommand,
    }

    fn create(args: &[&str]) -> Result<CreateArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["token", "create"], args].concat())?;
        match cli.command {
            TokenCommand::Create(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_token_id_argument_is_not_taken_for_the_global_token() {
        for command in ["get", "revoke"] {
            let cli = crate::cli::Cli::try_parse_from(["vm-system", "token", command, "some-id"]).unwrap();
            assert_ne!(cli.token.as_deref(), Some("some-id"), "{command}");
            match cli.command {
                crate::cli::Command::Token(TokenCommand::Get { id } | TokenCommand::Revoke { id }) => {
                    assert_eq!(id, "some-id")
                }
                other => panic!("parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn scopes_are_repeated_or_comma_separated_and_at_least_one_is_required() {
        let repeated = create(&["ci", "--scope", "read", "--scope", "execute"]).unwrap();
        let commas = create(&["ci", "--scope", "read,execute"]).unwrap();
        assert_eq!(repeated.scopes, [ScopeArg::Read, ScopeArg::Execute]);
        assert_eq!(commas.scopes, repeated.scopes);
        assert!(create(&["ci"]).is_err(), "no scope");
        assert!(create(&["ci", "--scope", "root"]).is_err(), "unknown scope");
    }

    #[test]
    fn an_expiry_is_a_lifetime_or_a_time_but_not_both() {
        let lifetime = create(&["ci", "--scope", "read", "--expires-in", "30d"]).unwrap();
        assert_eq!(lifetime.expires_in, Some(Duration::from_secs(30 * 86_400)));
        let at = create(&["ci", "--scope", "read", "--expires-at", "2030-01-31T01:00:00+01:00"]).unwrap();
        assert_eq!(at.expires_at.map(|at| time(&at)).as_deref(), Some("2030-01-31T00:00:00Z"));
        let both = ["ci", "--scope", "read", "--expires-in", "1h", "--expires-at", "2030-01-31T00:00:00Z"];
        assert_eq!(create(&both).unwrap_err().kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(create(&["ci", "--scope", "read", "--expires-in", "0s"]).is_err());
        assert!(create(&["ci", "--scope", "read", "--expires-at", "tomorrow"]).is_err());
        let now = Utc::now();
        assert_eq!(expiry_after(now, Duration::from_secs(60)).unwrap(), now + chrono::Duration::seconds(60));
        assert!(expiry_after(now, Duration::from_secs(u64::MAX)).is_err());
    }

    #[test]
    fn the_created_text_shows_the_secret_and_says_it_is_shown_once() {
        let token = TokenView {
            id: uuid::Uuid::nil(),
            name: "ci".into(),
            scopes: vec![ScopeView::Read, ScopeView::Execute],
            status: TokenStatusView::Active,
            created_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        let text = created_text(&CreatedTokenView { secret: "vmsys_abc".into(), token: token.clone() });
        assert!(text.contains("secret:     vmsys_abc\n"), "{text}");
        assert!(text.contains("scopes:     read, execute\n"), "{text}");
        assert!(text.contains("expires:    never\n"), "{text}");
        assert!(text.contains("shown only this once"), "{text}");
        let table = tokens_table(&[token]);
        assert_eq!(
            table.lines().next(),
            Some(
                "ID                                    NAME  SCOPES         STATUS  CREATED               LAST-USED  \
                 EXPIRES"
            )
        );
    }
}
