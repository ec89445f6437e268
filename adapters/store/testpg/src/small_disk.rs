//! [`SmallDisk`]: a small tmpfs for tests of a full disk.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// A tmpfs of a fixed size mounted on a new temporary directory, unmounted
/// (then removed) on drop, also when the test fails.
pub struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=…`). `None`, after a loud
    /// warning, when this process may not mount; a panic under `CI=true`,
    /// where the suite runs as root and must not skip.
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output();
        let why = match mounted {
            Ok(output) if output.status.success() => return Some(SmallDisk { dir }),
            Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            Err(err) => format!("cannot run mount: {err}"),
        };
        assert!(!crate::required(), "CI=true but a tmpfs cannot be mounted for the full-disk tests: {why}");
        let banner = "!".repeat(78);
        let _ = writeln!(
            std::io::stderr(),
            "\n{banner}\n!! cannot mount a tmpfs ({why}): the full-disk test is SKIPPED.\n\
             !! It needs root (CAP_SYS_ADMIN). Under CI=true this is a failure.\n{banner}\n"
        );
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    /// Unmounts, lazily if something still holds a file open, so that no
    /// mount outlives the test.
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}
