//! Guarantee 2: no network at all: not the daemon's port, not the host's
//! loopback, not an abstract unix socket of a process outside the session.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

attack!(the_daemons_port_and_loopback_are_unreachable, |lab| {
    let session = lab.session();
    let port = lab.url.rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    let script = format!(
        "bash -c 'echo GET / > /dev/tcp/127.0.0.1/{port}' 2>&1 && echo CONNECTED; \
         git ls-remote http://127.0.0.1:{port}/x 2>&1 && echo CONNECTED; echo done"
    );
    let out = lab.sh(&session, &script);
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(!out.stdout.contains("CONNECTED"), "{out:?}");
});

attack!(abstract_unix_sockets_outside_the_session_are_unreachable, |lab| {
    let name = format!("vm-sbx-{}", std::process::id() as u64 * 10 + lab.who as u64);
    let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let session = lab.session();
    let script = format!(
        "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); print('CONNECTED')\" 2>&1; \
         python3 -c \"import socket; socket.socket(socket.AF_INET)\" 2>&1; echo done"
    );
    let out = lab.sh(&session, &script);
    if out.stdout.contains("not found") {
        eprintln!("note: python3 is missing; skipping the socket probes");
        return;
    }
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(!out.stdout.contains("CONNECTED"), "{out:?}");
    assert!(listener.accept().is_err(), "a session connected to an outside socket");
});
