//! The daemon under a flood of connections that never finish a request
//! (slowloris): it keeps answering quickly, closes them at the header
//! timeout, and does not spin when it runs out of file descriptors.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::harness::{serve_command, Daemon, Home};

/// Descriptors the test and the daemon it starts (which inherits the
/// limit) need for 5,000 connections each, with room to spare.
const WANTED_FILES: u64 = 16_384;

/// Raises this test process's soft open-file limit to its hard limit, and
/// the hard limit to [`WANTED_FILES`] when it is lower and the test may
/// (as root, like CI).
fn raise_own_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < WANTED_FILES && setrlimit(Resource::RLIMIT_NOFILE, WANTED_FILES, WANTED_FILES).is_ok() {
        return WANTED_FILES;
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

fn address(daemon: &Daemon) -> SocketAddr {
    daemon.url.trim_start_matches("http://").parse().expect("the daemon announces ip:port")
}

/// The start of a request header, without the blank line that ends it.
fn half_header(addr: SocketAddr) -> String {
    format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: slowloris\r\n")
}

/// `GET /api/v1/health` over a fresh connection: the time from connect to
/// the whole response.
fn timed_health(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("the daemon accepts");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a whole response");
    let took = start.elapsed();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    took
}

/// Opens `count` connections: even ones send half a header, odd ones nothing.
fn flood(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let half = half_header(addr);
    (0..count)
        .map(|i| {
            let mut stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connection {i}: {err}"));
            if i % 2 == 0 {
                stream.write_all(half.as_bytes()).unwrap();
            }
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect()
}

/// Whether the server has closed `stream` (EOF or reset); reads and
/// discards anything it sent first.
fn is_closed(mut stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon runs");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // /proc counts in USER_HZ, 100 per second on Linux whatever the kernel's HZ.
    Duration::from_millis(ticks * 10)
}

/// The share of one core the process used over `window`.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    std::thread::sleep(window);
    (cpu_time(pid) - before).as_secs_f64() / window.as_secs_f64()
}

#[test]
fn five_thousand_stalled_connections_neither_slow_health_nor_stay_open() {
    const CONNECTIONS: usize = 5_000;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
    let hard = raise_own_open_file_limit();
    assert!(hard as usize > CONNECTIONS + 100, "this test needs an open-file hard limit above {CONNECTIONS}");
    let home = Home::new();
    let daemon = Daemon::start_with(&home, &["--listen", "127.0.0.1:0", "--header-read-timeout", "5s"]);
    let addr = address(&daemon);
    timed_health(addr);

    let started = Instant::now();
    let mut stalled = flood(addr, CONNECTIONS);
    let opened = started.elapsed();

    let mut latencies: Vec<Duration> = (0..20).map(|_| timed_health(addr)).collect();
    let measured = started.elapsed();
    latencies.sort();
    let (median, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    let cpu = cpu_share(daemon.pid(), Duration::from_millis(500));
    let still_open = stalled.iter().filter(|stream| !is_closed(stream)).count();
    eprintln!(
        "{CONNECTIONS} stalled connections opened in {opened:?}; GET /api/v1/health over 20 fresh connections: \
         median {median:?}, max {max:?}; daemon CPU {:.0}% of a core; {still_open} still open after {:?}",
        cpu * 100.0,
        started.elapsed()
    );
    assert!(measured < HEADER_TIMEOUT, "the flood had to be open while health was measured ({measured:?})");
    assert!(still_open >= CONNECTIONS * 9 / 10, "the daemon dropped the stalled connections early: {still_open} open");
    assert!(max < Duration::from_millis(100), "health took up to {max:?} (median {median:?})");
    assert!(cpu < 0.5, "the daemon used {:.0}% of a core holding idle connections", cpu * 100.0);

    let deadline = started + opened + HEADER_TIMEOUT + Duration::from_secs(5);
    loop {
        stalled.retain(|stream| !is_closed(stream));
        if stalled.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} stalled connections still open {:?} after the flood began",
            stalled.len(),
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("all stalled connections closed by the daemon {:?} after the flood began", started.elapsed());
    assert!(timed_health(addr) < Duration::from_secs(1));
}

#[test]
fn out_of_file_descriptors_the_daemon_backs_off_and_recovers() {
    const FILE_LIMIT: u64 = 256;
    raise_own_open_file_limit();
    let home = Home::new();
    let mut command = serve_command(&home, &["--listen", "127.0.0.1:0", "--header-read-timeout", "3s"]);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, FILE_LIMIT, FILE_LIMIT)
                .map_err(std::io::Error::from)
        });
    }
    let daemon = Daemon::start_command(command);
    let addr = address(&daemon);
    timed_health(addr);

    // More connections than descriptors: the daemon accepts until EMFILE,
    // the rest wait in the listen backlog.
    let stalled = flood(addr, 2 * FILE_LIMIT as usize);
    let cpu = cpu_share(daemon.pid(), Duration::from_secs(1));
    eprintln!("daemon CPU at the open-file limit: {:.0}% of a core", cpu * 100.0);
    assert!(cpu < 0.3, "the daemon spins at the open-file limit: {:.0}% of a core", cpu * 100.0);

    // Once the stalled connections are closed (by the header timeout, or by
    // their clients as here), the daemon answers again.
    drop(stalled);
    let start = Instant::now();
    let took = timed_health(addr);
    eprintln!("health answered {:?} after the flood ended ({took:?} for the request)", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(5), "recovery took {:?}", start.elapsed());
}
