//! `cargo run -p vm-testpg`: starts a throwaway PostgreSQL cluster with
//! durable settings, prints the URL of its empty `vm` database, and removes
//! the cluster when stdin closes (Enter, Ctrl+D or Ctrl+C).

use std::io::BufRead;

fn main() -> std::process::ExitCode {
    let cluster = match vm_testpg::Cluster::start(vm_testpg::Options { durable: true }) {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("error: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(err) = cluster.sql("CREATE DATABASE vm") {
        eprintln!("error: {err}");
        return std::process::ExitCode::FAILURE;
    }
    println!("{}", cluster.url("vm"));
    eprintln!("cluster in {}; press Enter to remove it", cluster.dir().display());
    let _ = std::io::stdin().lock().lines().next();
    std::process::ExitCode::SUCCESS
}
