//! Descriptor hygiene: a session's keeper holds only its channel to the
//! daemon (until it hands it to the live worker), its keeper channel,
//! `/dev/null` as stdin and stdout, and its own stderr pipe, which the
//! daemon logs with the session id. Nothing the daemon's launcher or the
//! zygote had open reaches it, or the programs it starts. Also: receiving
//! descriptors passed with `SCM_RIGHTS`.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Where a worker's channel lives once the others are closed.
const CHANNEL_FD: i32 = 3;
/// Where a keeper's channel lives, beside the session's.
const KEEPER_FD: i32 = 4;
/// Where descriptors wait while the low numbers are rearranged.
const PARK_FROM: i32 = 16;

/// What [`keep_only`] kept, at their new numbers.
pub struct Kept {
    pub channel: OwnedFd,
    pub keeper: OwnedFd,
    pub extra: Vec<OwnedFd>,
}

/// Rearranges the calling keeper's descriptors: 0 and 1 from `/dev/null`,
/// 2 the session's stderr pipe (or `/dev/null`), 3 the session's channel,
/// 4 the keeper channel, 5 and up `extra` (in order), and closes every
/// other one.
pub fn keep_only(channel: OwnedFd, keeper: OwnedFd, stderr: Option<OwnedFd>, extra: Vec<OwnedFd>) -> io::Result<Kept> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    // Park them all above the numbers they are moved onto.
    let channel = park(channel)?;
    let keeper = park(keeper)?;
    let stderr = stderr.map(park).transpose()?;
    let extra = extra.into_iter().map(park).collect::<io::Result<Vec<_>>>()?;
    let err: OwnedFd = match stderr {
        Some(pipe) => pipe,
        None => OwnedFd::from(null.try_clone()?),
    };
    let null = OwnedFd::from(null);
    for (fd, target) in [(&null, 0), (&null, 1), (&err, 2)] {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    drop(err);
    drop(null);
    let channel = move_fd(channel, CHANNEL_FD)?;
    let keeper = move_fd(keeper, KEEPER_FD)?;
    let mut next = KEEPER_FD + 1;
    let mut kept = Vec::new();
    for fd in extra {
        kept.push(move_fd(fd, next)?);
        next += 1;
    }
    // SAFETY: closes descriptors no Rust object of this process will use again.
    if unsafe { libc::close_range(next as libc::c_uint, libc::c_uint::MAX, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Kept { channel, keeper, extra: kept })
}

/// One control byte from a unix socket and the descriptors that came with
/// it (at most three, close-on-exec), in order; `None` at the end of the
/// stream.
pub fn receive(socket: RawFd) -> nix::Result<Option<(u8, Vec<OwnedFd>)>> {
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    loop {
        let mut iov = [IoSliceMut::new(&mut byte)];
        let message = match recvmsg::<()>(socket, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(message) => message,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err),
        };
        if message.bytes == 0 {
            return Ok(None);
        }
        let mut fds = Vec::new();
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raws) = cmsg {
                for raw in raws {
                    // SAFETY: the kernel just gave us this descriptor; we own it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        return Ok(Some((byte[0], fds)));
    }
}

/// Moves `fd` to a number of at least 10, clear of those it is moved onto.
fn park(fd: OwnedFd) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(PARK_FROM)).map_err(io::Error::from)?;
    // SAFETY: fcntl just made `raw` a descriptor of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Marks every descriptor from 3 up close-on-exec: called in a child just
/// before it runs another program.
pub fn cloexec_from_3() -> io::Result<()> {
    // SAFETY: only flags change; no descriptor is closed.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Duplicates `fd` onto `target` (closing what was there), close-on-exec.
fn move_fd(fd: OwnedFd, target: i32) -> io::Result<OwnedFd> {
    // SAFETY: dup3 onto a descriptor number we are about to own.
    if unsafe { libc::dup3(fd.as_raw_fd(), target, libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(fd);
    // SAFETY: dup3 just made `target` a descriptor of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(target) })
}
