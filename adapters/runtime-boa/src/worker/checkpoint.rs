//! Checkpoints (SPEC §10): after each job the live worker forks a copy of
//! itself that waits, holding the session as it was. When the live worker
//! dies (cancel, a hard limit, a crash), the daemon tells the checkpoint to
//! take over, and the session lives on with its state from before the job.
//! Effects outside the heap (files, programs) are not undone.
//!
//! Every live worker and checkpoint is made with `clone(CLONE_PARENT)`: a
//! child of the keeper (see [`super::keeper`]), which reaps it, and not of
//! the process that made it, whose death must not take it along.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::session::{self, Incoming};

/// Which side of [`clone_sibling`] this is.
pub enum Sibling {
    Child,
    Parent(Pid),
}

/// Forks the calling worker into a sibling: a child of the keeper `keeper`
/// (the caller's parent), which dies with the keeper.
///
/// The caller must be single-threaded: the child continues on a copy of the
/// caller's stack, like `fork`.
pub fn clone_sibling(keeper: Pid) -> io::Result<Sibling> {
    // SAFETY: a raw clone without a new stack behaves like fork(2); the
    // worker calling this is single-threaded, so the child may do anything.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            die_with_keeper(keeper);
            Ok(Sibling::Child)
        }
        pid => Ok(Sibling::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Makes the calling process die with the keeper `keeper`, its parent,
/// also where no PID namespace does it (`--sandbox=off`); exits at once if
/// the keeper is already gone.
pub fn die_with_keeper(keeper: Pid) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if nix::unistd::getppid() != keeper {
        std::process::exit(0);
    }
}

/// A checkpoint seen from the live worker that took it.
pub struct Checkpoint {
    pid: Pid,
    /// The write end of the pipe the checkpoint watches: it closes when
    /// this process dies.
    pipe: OwnedFd,
}

impl Checkpoint {
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Ends the checkpoint. It is killed before its pipe closes: it never
    /// sees the close, which would tell it the live worker died.
    pub fn discard(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        drop(self.pipe);
    }

    /// Lets go of a checkpoint that another live worker keeps: a forked
    /// session's worker does so with its source's.
    pub fn forget(self) {
        drop(self.pipe);
    }
}

/// What [`take`] returns, in each process.
pub enum Taken {
    /// In the live worker: the checkpoint it took.
    Kept(Checkpoint),
    /// In the checkpoint: the live worker died and the daemon said
    /// [`crate::protocol::Request::Resume`]; this process is now the live
    /// worker of the session.
    Resumed,
}

/// Takes a checkpoint of the calling live worker, whose parent is the
/// keeper `keeper`.
pub fn take(channel: &UnixStream, keeper: Pid) -> io::Result<Taken> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    match clone_sibling(keeper)? {
        Sibling::Parent(pid) => {
            drop(read);
            Ok(Taken::Kept(Checkpoint { pid, pipe: write }))
        }
        Sibling::Child => {
            drop(write);
            wait(read, channel);
            Ok(Taken::Resumed)
        }
    }
}

/// A checkpoint's wait: until the live worker dies (its pipe closes), then
/// until the daemon says `Resume`. Exits when the daemon closes the channel
/// first. It never reads what the daemon sends the live worker.
fn wait(pipe: OwnedFd, channel: &UnixStream) {
    // The daemon shut the channel (nix names no POLLRDHUP).
    let hung_up = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let closed = hung_up | PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
    loop {
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN), PollFd::new(channel.as_fd(), hung_up)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => std::process::exit(0),
        }
        if fds[1].revents().is_some_and(|r| r.intersects(closed)) {
            std::process::exit(0);
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
    }
    drop(pipe);
    loop {
        match session::next_request(channel) {
            Ok(Some(Incoming::Resume)) => return,
            // Sent to the dead worker, which never read it: it never ran.
            Ok(Some(Incoming::Run(_) | Incoming::Fork(_))) => continue,
            Ok(Some(Incoming::Boot(_)) | None) | Err(_) => std::process::exit(0),
        }
    }
}
