//! The session's filesystem: a fresh, read-only root (a small tmpfs) holding
//! only the worktree (read-write), the policy's read-only paths, a few device
//! files, a private `/proc` of the session's PID namespace and a `passwd`
//! naming the session's user. The daemon's database, cache writes, logs,
//! other worktrees, `/tmp`, `/home` and `/root` are not in it at all.
//!
//! When the daemon runs as root the worktree is an idmapped mount: its
//! owner's files appear owned by the session's unprivileged user, who can
//! then work on them as their owner would, and what it writes is stored as
//! the owner's, with nobody's files changed on disk. Without Landlock this
//! still leaves whatever the mounted paths hold readable, which is the point.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// Where the new root is assembled before it becomes `/`: any directory
/// that exists on every host will do, since what it held is hidden only
/// inside this mount namespace.
const NEW_ROOT: &str = "/tmp";

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What goes where in the new root.
enum Entry {
    /// A detached copy of a host mount, attached at the same path.
    Tree { fd: OwnedFd, is_dir: bool },
    /// A symlink, as on the host (`/bin -> usr/bin`).
    Symlink(PathBuf),
    /// A small file, copied into the new root (read-only like the rest of
    /// it): cheaper than a mount of its own.
    Copy(Vec<u8>),
}

/// Files of the read-only list up to this size are copied, not mounted.
const COPY_MAX_BYTES: u64 = 256 * 1024;

/// What the new root is made of.
pub struct Layout<'a> {
    /// Where the worktree appears in the new root (its path on the host).
    pub worktree: &'a Path,
    /// The worktree itself, from [`open_worktree`].
    pub worktree_dir: &'a OwnedFd,
    pub read_only: &'a [PathBuf],
    pub devices: &'a [PathBuf],
    /// A user namespace mapping the worktree's owner to the session's user,
    /// for a root daemon's idmapped worktree.
    pub idmap: Option<&'a OwnedFd>,
    /// `/etc/passwd` and `/etc/group` of the new root.
    pub passwd: String,
    pub group: String,
}

/// Builds the new root and makes it `/`, then changes into the worktree.
/// The caller is in a fresh mount namespace with the rights to mount in it,
/// whose mounts [`private_proc`] made private.
pub fn enter_new_root(layout: &Layout<'_>) -> Result<(), SandboxError> {
    let step = |what: &'static str| move |err: io::Error| SandboxError::Mount { what, source: err };
    let mut entries: Vec<(PathBuf, Entry)> = Vec::new();
    // The worktree: recursive unless idmapped (an idmap must fit every
    // filesystem below it), never set-uid or device files.
    let recursive = if layout.idmap.is_some() { 0 } else { AT_RECURSIVE };
    let worktree = clone_tree(layout.worktree_dir, recursive).map_err(step("open the worktree"))?;
    let mut attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if layout.idmap.is_some() {
        attr |= MOUNT_ATTR_IDMAP;
    }
    set_attr(&worktree, attr, layout.idmap, recursive != 0).map_err(step("idmap the worktree"))?;
    entries.push((layout.worktree.to_path_buf(), Entry::Tree { fd: worktree, is_dir: true }));

    for path in layout.read_only {
        let Ok(meta) = path.symlink_metadata() else { continue };
        if meta.file_type().is_symlink() {
            entries.push((path.clone(), Entry::Symlink(std::fs::read_link(path).map_err(step("read a symlink"))?)));
            continue;
        }
        if meta.is_file() && meta.len() <= COPY_MAX_BYTES {
            entries.push((path.clone(), Entry::Copy(std::fs::read(path).map_err(step("read a read-only file"))?)));
            continue;
        }
        let fd = open_tree(path, AT_RECURSIVE).map_err(step("open a read-only path"))?;
        set_attr(&fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, None, true)
            .map_err(step("make a path read-only"))?;
        entries.push((path.clone(), Entry::Tree { fd, is_dir: meta.is_dir() }));
    }
    for path in layout.devices {
        if !path.exists() {
            continue;
        }
        let fd = open_tree(path, 0).map_err(step("open a device"))?;
        set_attr(&fd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, None, false).map_err(step("restrict a device"))?;
        entries.push((path.clone(), Entry::Tree { fd, is_dir: false }));
    }
    // Parents before children: a path inside another is attached after it.
    entries.sort_by_key(|(path, _)| path.components().count());

    mount(Some("tmpfs"), NEW_ROOT, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755,size=4m"))
        .map_err(step("mount the new root"))?;
    let root = Path::new(NEW_ROOT);
    for (path, entry) in entries {
        let target = root.join(path.strip_prefix("/").unwrap_or(&path));
        match entry {
            Entry::Symlink(to) => {
                make_parents(&target).map_err(step("make a directory"))?;
                std::os::unix::fs::symlink(to, &target).map_err(step("make a symlink"))?;
            }
            Entry::Copy(bytes) => {
                make_parents(&target).map_err(step("make a directory"))?;
                std::fs::write(&target, bytes).map_err(step("copy a read-only file"))?;
            }
            Entry::Tree { fd, is_dir } => {
                if target.symlink_metadata().is_err() {
                    make_parents(&target).map_err(step("make a directory"))?;
                    if is_dir {
                        std::fs::DirBuilder::new().mode(0o755).create(&target).map_err(step("make a mount point"))?;
                    } else {
                        std::fs::File::create(&target).map_err(step("make a mount point"))?;
                    }
                }
                move_mount(&fd, &target).map_err(step("attach a mount"))?;
            }
        }
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).map_err(step("make /etc"))?;
    for (name, text) in [("passwd", &layout.passwd), ("group", &layout.group)] {
        if etc.join(name).symlink_metadata().is_err() {
            std::fs::write(etc.join(name), text).map_err(step("write /etc/passwd"))?;
        }
    }
    let proc = root.join("proc");
    std::fs::DirBuilder::new().mode(0o555).create(&proc).map_err(step("make /proc"))?;
    mount(Some("proc"), proc, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        .map_err(step("mount /proc"))?;

    std::env::set_current_dir(root).map_err(step("enter the new root"))?;
    pivot_root(".", ".").map_err(step("pivot_root"))?;
    // SAFETY: umount2 of the old root, now stacked under the new one.
    if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(step("detach the host's root")(io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(step("enter the new root"))?;
    let read_only = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    mount(None, "/", None, read_only, None).map_err(step("make the new root read-only"))?;
    std::env::set_current_dir(layout.worktree).map_err(step("enter the worktree"))?;
    Ok(())
}

/// Makes every mount of the worker's namespace private and gives it a
/// `/proc` of its own PID namespace, so that `/proc/<pid>` names its own
/// children while the new root is being built.
pub fn private_proc() -> Result<(), SandboxError> {
    let step = |what: &'static str| move |err: io::Error| SandboxError::Mount { what, source: err };
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None).map_err(step("make mounts private"))?;
    mount(Some("proc"), "/proc", Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        .map_err(step("mount /proc"))
}

/// Opens the worktree once, for every later use (its owner, its mount):
/// its path was checked by the daemon, but whoever may write one of its
/// parent directories (a session on a directory above it, the owner of the
/// parent) could since have put a symlink there, to `/` or to the daemon's
/// directory, which a root worker would follow. The daemon stores the
/// worktree's canonical path, so no symlink is followed now.
pub fn open_worktree(path: &Path) -> io::Result<OwnedFd> {
    let how = nix::fcntl::OpenHow::new()
        .flags(nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC)
        .resolve(nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS | nix::fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, path, how).map_err(|err| {
        if err == nix::errno::Errno::ELOOP {
            io::Error::other(format!(
                "{} is no longer the directory the session was given (a symlink is in its path)",
                path.display()
            ))
        } else {
            io::Error::from(err)
        }
    })?;
    Ok(fd)
}

/// The owner of the opened worktree, as `(uid, gid)`.
pub fn owner(dir: &OwnedFd) -> io::Result<(u32, u32)> {
    let stat = nix::sys::stat::fstat(dir)?;
    Ok((stat.st_uid, stat.st_gid))
}

fn make_parents(target: &Path) -> io::Result<()> {
    match target.parent() {
        Some(parent) => std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent),
        None => Ok(()),
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn mount(
    source: Option<&str>,
    target: impl AsRef<Path>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(|s| CString::new(s).expect("mount sources are literals"));
    let fstype = fstype.map(|s| CString::new(s).expect("filesystem types are literals"));
    let data = data.map(|s| CString::new(s).expect("mount options are literals"));
    let target = cstring(target.as_ref())?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a valid C string or null, as mount(2) allows.
    let done = unsafe { libc::mount(ptr(&source), target.as_ptr(), ptr(&fstype), flags, ptr(&data).cast()) };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached copy of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`).
fn open_tree(path: &Path, extra: libc::c_uint) -> io::Result<OwnedFd> {
    let path = cstring(path)?;
    clone_mount(libc::AT_FDCWD, &path, extra)
}

/// A detached copy of the mount of the directory `dir` (see [`open_tree`]).
fn clone_tree(dir: &OwnedFd, extra: libc::c_uint) -> io::Result<OwnedFd> {
    clone_mount(dir.as_raw_fd(), c"", libc::AT_EMPTY_PATH as libc::c_uint | extra)
}

/// `open_tree(dirfd, path, OPEN_TREE_CLONE | O_CLOEXEC | extra)`.
fn clone_mount(dirfd: libc::c_int, path: &std::ffi::CStr, extra: libc::c_uint) -> io::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | extra;
    // SAFETY: open_tree with a valid C string; a non-negative result is a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn set_attr(tree: &OwnedFd, set: u64, userns: Option<&OwnedFd>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr on our descriptor with a valid attribute struct of its size.
    let done = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn move_mount(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: move_mount of our detached tree onto a valid path.
    let done = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pivot_root(new_root: &str, put_old: &str) -> io::Result<()> {
    let new_root = CString::new(new_root).expect("literal");
    let put_old = CString::new(put_old).expect("literal");
    // SAFETY: pivot_root with valid C strings.
    if unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
