//! Tokens on this machine: the daemon's data directory, the bootstrap admin
//! token a fresh loopback daemon writes there (readable only by its user),
//! `serve --admin-token-file`, and how client commands find a token.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use vm_domain::services::{TokenService, MIN_SUPPLIED_SECRET_LEN};
use vm_domain::token::{Scope, TokenName, TokenSecret, TokenSpec};

/// The environment variable naming the data directory, for `serve` and the
/// client commands alike.
pub const DATA_DIR_ENV: &str = "VM_SYSTEM_DATA_DIR";

/// `$VM_SYSTEM_DATA_DIR`, else `$XDG_DATA_HOME/vm-system`, else
/// `~/.local/share/vm-system`.
pub fn default_data_dir() -> PathBuf {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env(DATA_DIR_ENV) {
        return dir;
    }
    if let Some(xdg) = env("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("vm-system");
    }
    match env("HOME") {
        Some(home) => home.join(".local/share/vm-system"),
        None => PathBuf::from(".vm-system"),
    }
}

/// Where a daemon listening on `port` keeps its bootstrap admin token.
pub fn token_file(data_dir: &Path, port: u16) -> PathBuf {
    data_dir.join(format!("admin-token-{port}"))
}

/// Writes `secret` to `path`: the directory is made `0700` if missing, the
/// file is `0600` from its first byte and replaced atomically.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp =
        dir.join(format!(".{}.{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("token"), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The secret in a token file, if the file can be read and holds one.
pub fn read_token_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    TokenSecret::from_supplied(&text).map(|secret| secret.expose().to_owned())
}

/// The secret of `--admin-token-file`, read and checked before the daemon
/// opens anything.
pub struct AdminTokenFile {
    path: PathBuf,
    secret: TokenSecret,
}

impl AdminTokenFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
        let secret = TokenSecret::from_supplied(&text)
            .ok_or_else(|| anyhow::anyhow!("the admin token file {} is empty", path.display()))?;
        if secret.expose().len() < MIN_SUPPLIED_SECRET_LEN {
            anyhow::bail!(
                "the admin token file {} holds {} characters; an admin token secret needs at least {MIN_SUPPLIED_SECRET_LEN}",
                path.display(),
                secret.expose().len()
            );
        }
        Ok(Self { path: path.to_path_buf(), secret })
    }
}

/// What the daemon does about tokens at start, with authentication on:
/// `--admin-token-file` makes that file's secret an admin token; otherwise,
/// when no token can be used yet, a bootstrap admin token is made, written
/// to the token file and (on loopback) printed once.
pub async fn prepare_tokens(
    tokens: &TokenService,
    admin_token_file: Option<&AdminTokenFile>,
    data_dir: &Path,
    local: SocketAddr,
) -> anyhow::Result<()> {
    if let Some(AdminTokenFile { path, secret }) = admin_token_file {
        let token = tokens
            .install_admin(secret, "admin-token-file")
            .await
            .map_err(|err| anyhow::anyhow!("the admin token file {}: {err}", path.display()))?;
        tracing::info!(file = %path.display(), token = %token.name, "the secret in the admin token file is an admin token");
        return Ok(());
    }
    let file = token_file(data_dir, local.port());
    if tokens.any_active().await? {
        if file.exists() {
            tracing::info!(file = %file.display(), "the bootstrap admin token is in this file (vm-system commands on this machine read it)");
        }
        return Ok(());
    }
    let name = TokenName::parse("bootstrap")?;
    let (token, secret) = tokens.create(TokenSpec { name, scopes: vec![Scope::Admin], expires_at: None }).await?;
    write_secret_file(&file, secret.expose())
        .with_context(|| format!("cannot write the bootstrap admin token to {}", file.display()))?;
    tracing::info!(file = %file.display(), token_id = %token.id, "made a bootstrap admin token: no token existed yet");
    let mut out = std::io::stdout().lock();
    if local.ip().is_loopback() || local.ip().is_unspecified() {
        let host = if local.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], local.port())) } else { local };
        writeln!(out, "Bootstrap admin token (shown once): {}", secret.expose())?;
        writeln!(out, "It is saved, readable only by you, in {}", file.display())?;
        writeln!(out, "Web UI, signed in: http://{host}/#token={}", secret.expose())?;
    } else {
        writeln!(out, "Bootstrap admin token saved, readable only by you, in {}", file.display())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_token_file_is_private_from_its_first_byte_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = token_file(&dir.path().join("data"), 3210);
        write_secret_file(&file, "vmsys_one").unwrap();
        write_secret_file(&file, "vmsys_two").unwrap();
        assert_eq!(read_token_file(&file).as_deref(), Some("vmsys_two"));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(file.parent().unwrap()).unwrap().count(), 1, "no temporary file is left");
    }
}
