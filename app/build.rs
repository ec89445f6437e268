//! Builds the web UI before a release build embeds it, so the README's one
//! command (`cargo run --release -p vm-system -- serve`) serves everything.
//!
//! Release profile only: when `ui/dist` is missing or older than the UI's
//! sources, runs `npm ci` (if `ui/node_modules` is missing or stale) and
//! `npm run build` in `ui/`. Without npm, or when the UI build fails, it warns
//! and the binary serves a page at `/` saying how to build the UI.
//! `VM_SYSTEM_SKIP_UI_BUILD=1` skips npm. Debug builds never run npm: they
//! read `ui/dist` from disk at run time.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// What `npm run build` reads, relative to `ui/`.
const SOURCES: &[&str] =
    &["src", "public", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=VM_SYSTEM_SKIP_UI_BUILD");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let ui = manifest.parent().expect("app/ sits in the workspace root").join("ui");
    // Canonical, so debug builds still find `dist/` when it appears after compiling.
    let ui = ui.canonicalize().unwrap_or(ui);
    println!("cargo::rustc-env=VM_SYSTEM_UI_DIST={}", ui.join("dist").display());
    if env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    if !ui.join("package.json").exists() {
        println!("cargo::warning=no ui/package.json: the binary serves the API without the web UI");
        return;
    }
    for source in SOURCES {
        let path = ui.join(source);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    let index = ui.join("dist").join("index.html");
    if skip_requested() {
        watch_dist(&index);
        return;
    }
    let newest_source = SOURCES.iter().filter_map(|source| newest_mtime(&ui.join(source))).max();
    let built = modified(&index);
    let stale = match (built, newest_source) {
        (Some(built), Some(source)) => source > built,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if stale {
        let started = SystemTime::now();
        let built = build_ui(&ui);
        if built.is_ok() {
            // Best effort: if this fails, cargo merely reruns this script once more.
            backdate(&index, started).ok();
        }
        if let Err(problem) = built {
            for line in problem.lines() {
                println!("cargo::warning={line}");
            }
            println!(
                "cargo::warning=the web UI was not rebuilt; / serves {}",
                if index.exists() { "the previous build" } else { "a page saying how to build it" }
            );
        }
    }
    watch_dist(&index);
}

fn skip_requested() -> bool {
    env::var("VM_SYSTEM_SKIP_UI_BUILD").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// Reruns this script when `ui/dist/index.html` changes or goes away, so a
/// deleted build is rebuilt. While it is missing, cargo reruns the script on
/// every build (a missing path is always stale) until one can build it.
fn watch_dist(index: &Path) {
    println!("cargo::rerun-if-changed={}", index.display());
}

fn build_ui(ui: &Path) -> Result<(), String> {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    match Command::new(npm).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => {
            return Err(format!(
                "npm was not found, so the web UI cannot be built (install Node.js 20.19+ and npm, or build it \
                 elsewhere: cd {} && npm ci && npm run build)",
                ui.display()
            ))
        }
    }
    let lock = modified(&ui.join("package-lock.json"));
    let installed = modified(&ui.join("node_modules").join(".package-lock.json"));
    if installed.is_none() || lock > installed {
        run(ui, npm, &["ci", "--no-audit", "--no-fund"])?;
    }
    run(ui, npm, &["run", "build"])
}

/// Dates the new `dist/index.html` back to before this script ran: cargo
/// reruns a script whose watched file is newer than that run, and the file
/// we just wrote is no news (it would cost one more compile of the binary).
fn backdate(index: &Path, started: SystemTime) -> std::io::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let invoked = out_dir.parent().and_then(|dir| modified(&dir.join("invoked.timestamp")));
    let before = invoked.unwrap_or(started - Duration::from_secs(1));
    std::fs::File::options().write(true).open(index)?.set_modified(before)
}

fn run(ui: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .current_dir(ui)
        .env_remove("NODE_OPTIONS")
        .output()
        .map_err(|err| format!("cannot run `{shown}` in {}: {err}", ui.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut report = format!("`{shown}` in {} failed ({}):", ui.display(), output.status);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    for line in &lines[lines.len().saturating_sub(15)..] {
        report.push('\n');
        report.push_str(line);
    }
    Err(report)
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|meta| meta.modified()).ok()
}

/// The newest modification time of a file, or of any file under a directory.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = path.metadata().ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.filter_map(Result::ok).filter_map(|entry| newest_mtime(&entry.path())).max()
}
