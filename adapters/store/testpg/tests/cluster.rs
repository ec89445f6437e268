//! A throwaway cluster really serves SQL, and really goes away: no server
//! left listening, no directory left behind.

use std::net::TcpStream;

use vm_testpg::{Binaries, Cluster, Options};

/// The server programs, or `None` (after saying so) when this machine has
/// none and CI does not require them.
fn binaries() -> Option<Binaries> {
    let found = Binaries::locate();
    if found.is_none() {
        assert!(!vm_testpg::required(), "CI=true but initdb/pg_ctl/psql are not installed");
        eprintln!("PostgreSQL server programs not found: skipping");
    }
    found
}

#[test]
fn a_cluster_serves_sql_and_creates_distinct_databases() {
    if binaries().is_none() {
        return;
    }
    let cluster = Cluster::start(Options::default()).expect("the cluster starts");

    assert_eq!(cluster.sql("SELECT 1 + 1").unwrap(), "2");
    assert_eq!(cluster.sql("SHOW fsync").unwrap(), "off", "tests trade durability for speed");
    let first = cluster.create_database().unwrap();
    let second = cluster.create_database().unwrap();
    assert_ne!(first, second);
    assert!(first.starts_with(&format!("postgres://postgres@127.0.0.1:{}/", cluster.port())), "{first}");
    let names = cluster.sql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database").unwrap();
    assert!(names.contains("vm_test_0") && names.contains("vm_test_1"), "{names}");
}

#[test]
fn a_durable_cluster_keeps_fsync_on() {
    if binaries().is_none() {
        return;
    }
    let cluster = Cluster::start(Options { durable: true }).expect("the cluster starts");
    assert_eq!(cluster.sql("SHOW fsync").unwrap(), "on");
    assert_eq!(cluster.sql("SHOW synchronous_commit").unwrap(), "on");
}

#[test]
fn dropping_a_cluster_stops_the_server_and_removes_its_directory() {
    if binaries().is_none() {
        return;
    }
    let cluster = Cluster::start(Options::default()).expect("the cluster starts");
    let (dir, port) = (cluster.dir().to_owned(), cluster.port());
    assert!(dir.join("data/PG_VERSION").is_file());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "the server listens");

    drop(cluster);

    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "a server still listens on {port}");
}

#[test]
fn a_stopped_cluster_refuses_connections_and_restarts_on_its_port_with_its_data() {
    if binaries().is_none() {
        return;
    }
    let cluster = Cluster::start(Options::default()).expect("the cluster starts");
    let url = cluster.create_database().unwrap();
    cluster.sql_in(&url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)").unwrap();
    let port = cluster.port();

    cluster.stop().expect("the server stops");
    let refused = TcpStream::connect(("127.0.0.1", port)).is_err();
    cluster.restart().expect("the server starts again");

    assert!(refused, "a stopped server still listens on {port}");
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.sql_in(&url, "SELECT n FROM kept").unwrap(), "7");
}
