//! `vm-system libs download|list`: fills and shows the local library cache
//! (`<id>-<version>.js` files, the daemon's `--cache-dir`). Local commands:
//! they touch the cache directory, not the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use vm_domain::catalog::{LibraryInfo, LibraryRef, LIBRARIES};
use vm_runtime_boa::library_file;

use super::output::{self, Failure, Format, Outcome, Table};

/// The daemon's default `--cache-dir`, shared by these commands.
pub const DEFAULT_CACHE_DIR: &str = ".vm-cache/libraries";

#[derive(Debug, Subcommand)]
pub enum LibsCommand {
    /// Download catalog libraries into the cache: from each library's CDN URL
    /// (default), from the npm registry through the local npm client
    /// (`--from npm`, runs `npm pack`), or by copying `<id>-<version>.js`
    /// files from a directory (`--from DIR`).
    Download {
        /// Libraries to fetch, e.g. `lodash-4.17.21`; the whole catalog when none are named.
        names: Vec<String>,
        /// `cdn`, `npm`, or a directory holding `<id>-<version>.js` files.
        #[arg(long, default_value = "cdn")]
        from: String,
        /// The cache directory (the daemon's `serve --cache-dir`).
        #[arg(long, default_value = DEFAULT_CACHE_DIR)]
        cache_dir: PathBuf,
    },
    /// The library catalog and which libraries the cache holds.
    List {
        /// The cache directory (the daemon's `serve --cache-dir`).
        #[arg(long, default_value = DEFAULT_CACHE_DIR)]
        cache_dir: PathBuf,
    },
}

/// Where `libs download` takes libraries from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Cdn,
    Npm,
    Dir(PathBuf),
}

impl Source {
    fn parse(raw: &str) -> Self {
        match raw {
            "cdn" => Self::Cdn,
            "npm" => Self::Npm,
            dir => Self::Dir(PathBuf::from(dir)),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Cdn => "cdn".into(),
            Self::Npm => "npm".into(),
            Self::Dir(dir) => dir.display().to_string(),
        }
    }
}

pub async fn run(format: Format, command: LibsCommand) -> Outcome {
    match command {
        LibsCommand::Download { names, from, cache_dir } => {
            download(format, &names, &Source::parse(&from), &cache_dir).await
        }
        LibsCommand::List { cache_dir } => list(format, &cache_dir),
    }
}

fn selected(names: &[String]) -> Result<Vec<&'static LibraryInfo>, Failure> {
    if names.is_empty() {
        return Ok(LIBRARIES.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            LibraryRef::parse(name)
                .map(|l| l.info())
                .map_err(|err| Failure::Usage(format!("{err}; available: {}", available())))
        })
        .collect()
}

fn available() -> String {
    LIBRARIES.iter().map(LibraryInfo::name).collect::<Vec<_>>().join(", ")
}

async fn download(format: Format, names: &[String], source: &Source, cache_dir: &Path) -> Outcome {
    let libraries = selected(names)?;
    if let Source::Dir(dir) = source {
        if !dir.is_dir() {
            return Err(Failure::Usage(format!(
                "--from {}: not a directory; use `cdn`, `npm` or a directory of <id>-<version>.js files",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create the cache directory {}", cache_dir.display()))?;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for info in libraries {
        let library = LibraryRef::parse(&info.name()).expect("a catalog entry parses");
        let target = library_file(cache_dir, &library);
        match fetch(info, source).await.and_then(|bytes| store(&target, &bytes).map(|()| bytes.len())) {
            Ok(bytes) => done.push(json!({
                "name": info.name(),
                "from": source.label(),
                "bytes": bytes,
                "path": target.display().to_string(),
            })),
            Err(err) => failed.push(format!("{}: {err:#}", info.name())),
        }
    }
    let raw = Value::Array(done.clone());
    let text = || {
        let mut table = Table::new(&["LIBRARY", "FROM", "BYTES", "FILE"]);
        for row in &done {
            table.row(vec![
                row["name"].as_str().unwrap_or_default().to_owned(),
                row["from"].as_str().unwrap_or_default().to_owned(),
                row["bytes"].to_string(),
                row["path"].as_str().unwrap_or_default().to_owned(),
            ]);
        }
        table.render()
    };
    if !done.is_empty() || failed.is_empty() {
        show(format, &raw, text);
    }
    if !failed.is_empty() {
        let hint = match source {
            Source::Cdn => "\nwithout internet access, use `--from npm` (the local npm client) or `--from DIR`",
            _ => "",
        };
        return Err(Failure::Other(anyhow::anyhow!("could not download:\n  {}{hint}", failed.join("\n  "))));
    }
    Ok(())
}

fn list(format: Format, cache_dir: &Path) -> Outcome {
    let rows: Vec<Value> = LIBRARIES
        .iter()
        .map(|info| {
            let library = LibraryRef::parse(&info.name()).expect("a catalog entry parses");
            let path = library_file(cache_dir, &library);
            json!({
                "name": info.name(),
                "global": info.global,
                "cached": path.is_file(),
                "path": path.display().to_string(),
                "cdn_url": info.cdn_url,
                "description": info.description,
            })
        })
        .collect();
    let text = || {
        let mut table = Table::new(&["LIBRARY", "GLOBAL", "CACHED", "FILE"]);
        for row in &rows {
            table.row(vec![
                row["name"].as_str().unwrap_or_default().to_owned(),
                row["global"].as_str().unwrap_or_default().to_owned(),
                if row["cached"] == true { "yes" } else { "no" }.to_owned(),
                row["path"].as_str().unwrap_or_default().to_owned(),
            ]);
        }
        table.render()
    };
    show(format, &Value::Array(rows.clone()), text);
    Ok(())
}

fn show(format: Format, raw: &Value, text: impl FnOnce() -> String) {
    match format {
        Format::Text => output::stdout(&text()),
        Format::Json => output::stdout(&format!("{}\n", output::to_json(raw))),
        Format::Yaml => output::stdout(&output::to_yaml(raw)),
    }
}

/// The library's file, from `source`.
async fn fetch(info: &LibraryInfo, source: &Source) -> anyhow::Result<Vec<u8>> {
    let bytes = match source {
        Source::Cdn => from_cdn(info).await?,
        Source::Npm => {
            let info = *info;
            tokio::task::spawn_blocking(move || from_npm(&info)).await.context("the npm download stopped")??
        }
        Source::Dir(dir) => {
            let path = dir.join(info.file_name());
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("the downloaded file is empty");
    }
    Ok(bytes)
}

async fn from_cdn(info: &LibraryInfo) -> anyhow::Result<Vec<u8>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let response = http.get(info.cdn_url).send().await.with_context(|| format!("cannot fetch {}", info.cdn_url))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{} answered {status}", info.cdn_url);
    }
    Ok(response.bytes().await?.to_vec())
}

/// `npm pack <id>@<version>` into a temporary directory, then the catalog's
/// file out of the tarball.
fn from_npm(info: &LibraryInfo) -> anyhow::Result<Vec<u8>> {
    let work = tempfile::tempdir().context("cannot make a temporary directory")?;
    let spec = format!("{}@{}", info.id, info.version);
    let output = std::process::Command::new("npm")
        .args(["pack", &spec, "--silent", "--pack-destination"])
        .arg(work.path())
        .current_dir(work.path())
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run `npm` (is Node.js's npm installed and on PATH?)")?;
    if !output.status.success() {
        bail!("`npm pack {spec}` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let tarball = std::fs::read_dir(work.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .with_context(|| format!("`npm pack {spec}` made no .tgz file"))?;
    let wanted = Path::new("package").join(info.npm_file);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&tarball)?));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()? == wanted {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!("{} has no {}", tarball.display(), wanted.display())
}

/// Writes the file whole or not at all: a temporary file, then a rename.
fn store(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = target.parent().context("the cache file has a directory")?;
    let mut temp = tempfile::NamedTempFile::new_in(dir).context("cannot write into the cache directory")?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(())
}
