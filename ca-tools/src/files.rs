//! File helpers: bounded reads, no-overwrite writes, 0600 private keys.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::error::PkiError;
use crate::pemutil::INPUT_BYTES_MAX;

/// Most files read from one directory.
pub const DIR_ENTRIES_MAX: usize = 1024;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

/// Read a file of at most [`INPUT_BYTES_MAX`] bytes.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, PkiError> {
    read_bounded_max(path, INPUT_BYTES_MAX as u64)
}

/// Read a file of at most `limit` bytes.
pub fn read_bounded_max(path: &Path, limit: u64) -> Result<Vec<u8>, PkiError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf).map_err(io_err(path))?;
    if buf.len() as u64 > limit {
        return Err(PkiError::TooLarge { what: path.display().to_string(), size: buf.len() as u64, limit });
    }
    Ok(buf)
}

/// Read a UTF-8 text file of at most [`INPUT_BYTES_MAX`] bytes.
pub fn read_text(path: &Path) -> Result<String, PkiError> {
    read_text_max(path, INPUT_BYTES_MAX as u64)
}

/// Read a UTF-8 text file of at most `limit` bytes.
pub fn read_text_max(path: &Path, limit: u64) -> Result<String, PkiError> {
    let bytes = read_bounded_max(path, limit)?;
    String::from_utf8(bytes)
        .map_err(|_| PkiError::Pem { what: path.display().to_string(), reason: "not UTF-8 text".into() })
}

/// The regular files of a directory, sorted by name (at most [`DIR_ENTRIES_MAX`]).
/// A missing directory yields an empty list.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if path.is_file() {
            out.push(path);
        }
        if out.len() > DIR_ENTRIES_MAX {
            return Err(PkiError::Layout {
                dir: dir.to_path_buf(),
                reason: format!("more than {DIR_ENTRIES_MAX} files"),
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Create a directory and its parents.
pub fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Refuse if `path` exists and `force` is false.
pub fn check_writable(path: &Path, force: bool) -> Result<(), PkiError> {
    if path.exists() && !force {
        return Err(PkiError::AlreadyExists(path.to_path_buf()));
    }
    Ok(())
}

/// Whether a file is secret (mode 0600) or public (mode 0644).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// A private key: owner read/write only.
    Secret,
    /// A certificate or config: world-readable.
    Public,
}

/// Write `contents` to `path` (creating parents), refusing to overwrite unless
/// `force`. Secrets are created with mode 0600 and written via a temp file + rename.
pub fn write_file(path: &Path, contents: &[u8], secrecy: Secrecy, force: bool) -> Result<(), PkiError> {
    check_writable(path, force)?;
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(match secrecy {
            Secrecy::Secret => 0o600,
            Secrecy::Public => 0o644,
        });
    }
    let mut file = opts.open(&tmp).map_err(io_err(&tmp))?;
    #[cfg(unix)]
    if secrecy == Secrecy::Secret {
        use std::os::unix::fs::PermissionsExt as _;
        // The temp file may have pre-existed with a wider mode.
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err(&tmp))?;
    }
    file.write_all(contents).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}
