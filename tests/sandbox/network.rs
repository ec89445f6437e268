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

attack!(sessions_cannot_reach_one_anothers_abstract_sockets, |lab| {
    let name = format!("vm-sbx-peer-{}", std::process::id() as u64 * 10 + lab.who as u64);
    let listener_session = lab.session_on(&lab.path("other-worktree").canonicalize().unwrap());
    let listen = format!(
        "python3 -c \"import socket, time; s = socket.socket(socket.AF_UNIX); s.bind('\\0{name}'); s.listen(); \
         time.sleep(20)\" >/dev/null 2>&1 & sleep 0.5; echo listening"
    );
    let out = lab.sh(&listener_session, &listen);
    if !out.stdout.contains("listening") {
        eprintln!("note: python3 is missing; skipping the socket probes");
        return;
    }
    let session = lab.session();
    let connect = format!(
        "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); print('CONNECTED')\" 2>&1; \
         echo done"
    );
    let out = lab.sh(&session, &connect);
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(!out.stdout.contains("CONNECTED"), "a session reached another session's socket: {out:?}");
    // The twin: inside one session, its own processes can talk.
    let own = format!(
        "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); print('CONNECTED')\" 2>&1"
    );
    assert!(lab.sh(&listener_session, &own).stdout.contains("CONNECTED"), "a session reaches its own socket");
    lab.close(&listener_session);
});
