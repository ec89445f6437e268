//! A session family seen from the daemon: a session and the sessions forked
//! from it share one keeper process (see [`crate::worker::keeper`]) and its
//! namespaces. Here: the keeper channel's router, which gives each process
//! of the family a watch on its end, the translation of the family's pids
//! (as its PID namespace numbers them) into the daemon's, and the kill of
//! the whole family once its last session is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::watch;

use crate::protocol::{FrameReader, KeeperReport};
use crate::zygotes::{Exit, ExitWatch, Zygote};

/// How long to wait for a dead keeper's exit status.
const KEEPER_EXIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Ends of processes nobody watched yet that are remembered, newest kept:
/// a process may end before the daemon hears of it on the session channel.
const UNCLAIMED_EXITS: usize = 256;

/// The ends the keeper reported, by pid (in the family's namespace).
#[derive(Default)]
struct ExitBook {
    watches: HashMap<i32, watch::Sender<Option<Exit>>>,
    unclaimed: VecDeque<(i32, Exit)>,
    /// Set once the keeper is gone: every process of the family ended so.
    gone: Option<Exit>,
}

impl ExitBook {
    fn watch(&mut self, pid: i32) -> ExitWatch {
        if let Some(exit) = self.gone {
            return watch::channel(Some(exit)).1;
        }
        if let Some(at) = self.unclaimed.iter().position(|(p, _)| *p == pid) {
            let (_, exit) = self.unclaimed.remove(at).expect("the position was just found");
            return watch::channel(Some(exit)).1;
        }
        self.watches.entry(pid).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    fn ended(&mut self, pid: i32, exit: Exit) {
        match self.watches.remove(&pid) {
            Some(tx) => {
                let _ = tx.send(Some(exit));
            }
            None => {
                if self.unclaimed.len() == UNCLAIMED_EXITS {
                    self.unclaimed.pop_front();
                }
                self.unclaimed.push_back((pid, exit));
            }
        }
        self.watches.retain(|_, tx| !tx.is_closed());
    }

    fn all_gone(&mut self, exit: Exit) {
        self.gone = Some(exit);
        self.unclaimed.clear();
        for (_, tx) in self.watches.drain() {
            let _ = tx.send(Some(exit));
        }
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The keeper of a session family and what it reports.
pub struct Family {
    /// The keeper's pid, as the daemon sees it.
    keeper: i32,
    keeper_exit: ExitWatch,
    /// A std `Mutex`: only held to look up or change the book.
    book: Arc<Mutex<ExitBook>>,
    /// The daemon's end of the keeper channel; dropping it shuts the
    /// channel, and the keeper exits.
    _channel: OwnedWriteHalf,
    /// Sessions of the family that are not closed.
    members: AtomicUsize,
    /// The zygote stays up while any of its keepers lives: a zygote whose
    /// socket closes takes the daemon for gone and kills its keepers.
    _zygote: Arc<Zygote>,
}

impl Family {
    /// Starts routing what the keeper `keeper` reports on `channel`. The
    /// family has no member yet: see [`Family::join`].
    pub fn start(keeper: i32, keeper_exit: ExitWatch, channel: tokio::net::UnixStream, zygote: Arc<Zygote>) -> Self {
        let (read, write) = channel.into_split();
        let book = Arc::new(Mutex::new(ExitBook::default()));
        tokio::spawn(route(FrameReader::new(read), book.clone(), keeper_exit.clone()));
        Self { keeper, keeper_exit, book, _channel: write, members: AtomicUsize::new(0), _zygote: zygote }
    }

    /// A session joins the family.
    pub fn join(&self) {
        self.members.fetch_add(1, Ordering::AcqRel);
    }

    /// A session of the family closed; the last one takes the keeper, and
    /// every process of the family, along.
    pub fn leave(&self) {
        if self.members.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.kill();
        }
    }

    /// How the keeper ended; `None` while it lives.
    pub fn keeper_exit(&self) -> Option<Exit> {
        *self.keeper_exit.borrow()
    }

    /// A watch on the keeper's end.
    pub fn keeper_exit_watch(&self) -> ExitWatch {
        self.keeper_exit.clone()
    }

    /// A watch on the end of the family's process `pid` (as the family
    /// numbers it).
    pub fn watch(&self, pid: i32) -> ExitWatch {
        locked(&self.book).watch(pid)
    }

    /// The daemon's pid of the family's process `pid`, a child of the
    /// keeper: the process whose parent is the keeper and whose innermost
    /// pid (`NSpid`, the last one) is `pid`. Without a PID namespace
    /// (`--sandbox=off`) both are the same.
    pub fn host_pid(&self, pid: i32) -> Option<i32> {
        if is_child_numbered(pid, self.keeper, pid) {
            return Some(pid);
        }
        // The process looked for was usually just made: the newest first.
        // Children are younger than their parent, so their pids are
        // higher, unless pids wrapped around: those are looked at last.
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable_by_key(|&p| (p < self.keeper, std::cmp::Reverse(p)));
        pids.into_iter().find(|&candidate| is_child_numbered(candidate, self.keeper, pid))
    }

    /// Kills the keeper's process group, and with it (its PID namespace,
    /// or their parent-death signal) every process of the family; harmless
    /// when it is already gone.
    pub fn kill(&self) {
        if self.keeper_exit().is_none() {
            let _ = kill(Pid::from_raw(-self.keeper), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(self.keeper), Signal::SIGKILL);
        }
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether host process `candidate` is a child of `parent` numbered `pid`
/// in its own PID namespace.
fn is_child_numbered(candidate: i32, parent: i32, pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{candidate}/status")) else { return false };
    let field = |name: &str| status.lines().find_map(|line| line.strip_prefix(name)).map(str::split_whitespace);
    let parent_matches = field("PPid:").and_then(|mut f| f.next()).and_then(|p| p.parse().ok()) == Some(parent);
    parent_matches && field("NSpid:").and_then(|f| f.last()).and_then(|p| p.parse().ok()) == Some(pid)
}

/// Reads what the keeper reports until it ends: fills in each process's
/// end. When the keeper is gone, so is every process of the family: each
/// is marked with the keeper's own end.
async fn route(
    mut reader: FrameReader<tokio::net::unix::OwnedReadHalf>,
    book: Arc<Mutex<ExitBook>>,
    mut keeper_exit: ExitWatch,
) {
    while let Ok(Some(KeeperReport::Exited { pid, status })) = reader.next::<KeeperReport>().await {
        locked(&book).ended(pid, Exit::Status(status));
    }
    let exit = match tokio::time::timeout(KEEPER_EXIT_TIMEOUT, keeper_exit.wait_for(Option::is_some)).await {
        Ok(Ok(exit)) => *exit,
        _ => None,
    };
    locked(&book).all_gone(exit.unwrap_or(Exit::KeeperGone));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ExitStatus;

    #[test]
    fn an_end_reported_before_anyone_watched_is_kept_for_the_watch() {
        let mut book = ExitBook::default();
        let killed = Exit::Status(ExitStatus::Signal(9));
        book.ended(7, killed);
        assert_eq!(*book.watch(7).borrow(), Some(killed));
        assert_eq!(*book.watch(7).borrow(), None, "claimed once; a later process numbered 7 is alive");
    }

    #[test]
    fn a_watch_sees_the_end_and_the_keepers_end_ends_everyone() {
        let mut book = ExitBook::default();
        let first = book.watch(2);
        let second = book.watch(3);
        book.ended(2, Exit::Status(ExitStatus::Code(87)));
        assert_eq!(*first.borrow(), Some(Exit::Status(ExitStatus::Code(87))));
        assert_eq!(*second.borrow(), None);
        book.all_gone(Exit::KeeperGone);
        assert_eq!(*second.borrow(), Some(Exit::KeeperGone));
        assert_eq!(*book.watch(4).borrow(), Some(Exit::KeeperGone), "nothing of the family lives on");
    }
}
