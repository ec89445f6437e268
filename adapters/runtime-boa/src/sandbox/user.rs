//! Who a root daemon's sessions run as (`--sandbox-user`): an existing,
//! unprivileged account, given by name or as `UID[:GID]`.

use super::{SandboxError, SandboxMode};
use crate::protocol::SandboxUser;

impl SandboxMode {
    /// The sandbox on, for a daemon of this process's privileges: sessions
    /// of a root daemon run as `user`, which must exist and not be root;
    /// an unprivileged daemon's sessions keep its user (`user` is unused).
    pub fn on(user: &str) -> Result<Self, SandboxError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Self::On { run_as: None });
        }
        let run_as = resolve(user)?;
        if run_as.uid == 0 || run_as.gid == 0 {
            return Err(SandboxError::SandboxUser(format!(
                "{user} is root; sessions never run as root, so name an unprivileged user"
            )));
        }
        Ok(Self::On { run_as: Some(run_as) })
    }
}

/// A user given as a name or `UID[:GID]`; the GID defaults to the user's
/// primary group, or to the UID for a number with no account.
fn resolve(user: &str) -> Result<SandboxUser, SandboxError> {
    let (name, gid) = match user.split_once(':') {
        Some((name, gid)) => {
            let gid =
                gid.parse::<u32>().map_err(|_| SandboxError::SandboxUser(format!("{user}: GID must be a number")))?;
            (name, Some(gid))
        }
        None => (user, None),
    };
    if let Ok(uid) = name.parse::<u32>() {
        let account = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten();
        let gid = gid.or(account.map(|a| a.gid.as_raw())).unwrap_or(uid);
        return Ok(SandboxUser { uid, gid });
    }
    let account = nix::unistd::User::from_name(name).ok().flatten().ok_or_else(|| {
        SandboxError::SandboxUser(format!("{name}: no such user on this machine; name another, or give UID[:GID]"))
    })?;
    Ok(SandboxUser { uid: account.uid.as_raw(), gid: gid.unwrap_or(account.gid.as_raw()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_resolve_and_unknown_names_are_refused() {
        assert_eq!(resolve("4242:4343").unwrap(), SandboxUser { uid: 4242, gid: 4343 });
        assert!(resolve("4242:x").is_err());
        assert!(resolve("no-such-user-vm-system").is_err());
        assert_eq!(resolve("root").unwrap(), SandboxUser { uid: 0, gid: 0 });
    }

    #[test]
    fn a_root_daemon_never_runs_sessions_as_root() {
        if nix::unistd::geteuid().is_root() {
            assert!(SandboxMode::on("root").is_err());
            assert!(SandboxMode::on("0:1000").is_err());
            assert!(matches!(SandboxMode::on("nobody"), Ok(SandboxMode::On { run_as: Some(_) })));
        } else {
            assert_eq!(SandboxMode::on("root").unwrap(), SandboxMode::On { run_as: None });
        }
    }
}
