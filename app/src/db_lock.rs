//! [`DbLock`]: one daemon per SQLite file. A daemon holds an exclusive
//! `flock` on `<file>.lock` for as long as it runs, with its pid and URL
//! written in it; a second daemon on the same file refuses to start and
//! names the holder. The kernel drops the lock when the holder exits, even
//! on `kill -9`, so a stale file never blocks a start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock of one SQLite database, held until dropped.
#[derive(Debug)]
pub struct DbLock {
    path: PathBuf,
    file: Flock<File>,
}

impl DbLock {
    /// The lock file of the database `db`.
    pub fn path_of(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of `db`, or fails with one sentence naming the daemon
    /// that holds it.
    pub fn acquire(db: &Path) -> anyhow::Result<DbLock> {
        let path = Self::path_of(db);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|err| anyhow::anyhow!("cannot create the directory of {}: {err}", db.display()))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|err| anyhow::anyhow!("cannot open the lock file {}: {err}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => {
                let lock = DbLock { path, file };
                lock.record(&format!("pid {}\n", std::process::id()));
                Ok(lock)
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = describe_holder(&holder);
                anyhow::bail!(
                    "the database {} is in use by another vm-system daemon ({holder}); stop it or use another --db",
                    db.display()
                )
            }
            Err((_, errno)) => anyhow::bail!("cannot lock {}: {errno}", path.display()),
        }
    }

    /// Writes this daemon's pid and URL into the lock file, for the next
    /// daemon's refusal.
    pub fn describe(&self, url: &str) {
        self.record(&format!("pid {}\nurl {url}\n", std::process::id()));
    }

    /// Replaces the lock file's text; a failure only makes the next
    /// daemon's refusal say less, so it is logged.
    fn record(&self, text: &str) {
        let mut file: &File = &self.file;
        let written =
            file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            tracing::warn!(file = %self.path.display(), error = %err, "cannot describe this daemon in the lock file");
        }
    }
}

/// `pid 1234, http://127.0.0.1:3210` from the lock file's lines.
fn describe_holder(text: &str) -> String {
    let field = |key: &str| text.lines().find_map(|line| line.strip_prefix(key).map(|value| value.trim().to_owned()));
    match (field("pid "), field("url ")) {
        (Some(pid), Some(url)) => format!("pid {pid}, {url}"),
        (Some(pid), None) => format!("pid {pid}, still starting"),
        _ => "its pid is not written yet".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = DbLock::acquire(&db).expect("the first daemon takes the lock");
        first.describe("http://127.0.0.1:4321");
        let err = DbLock::acquire(&db).expect_err("a second daemon is refused").to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("http://127.0.0.1:4321"), "{err}");
        assert!(err.contains(&db.display().to_string()), "{err}");
        drop(first);
        DbLock::acquire(&db).expect("the lock is free once its holder is gone");
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(DbLock::path_of(Path::new("/data/vm-system.db")), PathBuf::from("/data/vm-system.db.lock"));
    }
}
