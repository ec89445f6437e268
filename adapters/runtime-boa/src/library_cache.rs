//! The on-disk library cache: one file per library, named by the catalog.
//! Only this file joins a cache directory and a library name.

use std::path::{Path, PathBuf};

use vm_domain::catalog::LibraryRef;
use vm_domain::ports::LibraryCache;

/// The file that holds `library` in the cache directory `dir`.
pub fn library_file(dir: &Path, library: &LibraryRef) -> PathBuf {
    dir.join(library.info().file_name())
}

/// A library cache that is a plain directory of `<id>-<version>.js` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsLibraryCache {
    /// The cache directory (by default `.vm-cache/libraries/`).
    pub dir: PathBuf,
}

impl FsLibraryCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl LibraryCache for FsLibraryCache {
    fn is_cached(&self, library: &LibraryRef) -> bool {
        library_file(&self.dir, library).is_file()
    }
}
