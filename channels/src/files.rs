//! Bounded file reading for the profile loader and the CLI.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest certificate, key or CRL file read.
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;
/// Most files read from one MSP sub-directory.
pub const MAX_DIR_FILES: usize = 64;

/// A file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The OS refused.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is bigger than allowed.
    #[error("{path} is larger than {max} bytes; is it the right file?")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{path} is not a text (PEM) file")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The directory has too many entries.
    #[error("{path} has more than {max} files")]
    TooManyFiles {
        /// The directory.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
}

/// Reads at most `max` bytes of `path`; refuses larger files.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io { path: path.to_path_buf(), source };
    let file = fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge { path: path.to_path_buf(), max });
    }
    Ok(bytes)
}

/// Reads a PEM (text) file of at most [`MAX_PEM_FILE_BYTES`].
pub fn read_pem(path: &Path) -> Result<String, FileError> {
    let bytes = read_bounded(path, MAX_PEM_FILE_BYTES)?;
    String::from_utf8(bytes).map_err(|_| FileError::NotText { path: path.to_path_buf() })
}

/// Reads every regular file of `dir` as PEM text, in file-name order; a
/// missing directory gives an empty list.
pub fn read_pem_dir(dir: &Path) -> Result<Vec<String>, FileError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let io = |source| FileError::Io { path: dir.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() {
            paths.push(path);
        }
        if paths.len() > MAX_DIR_FILES {
            return Err(FileError::TooManyFiles { path: dir.to_path_buf(), max: MAX_DIR_FILES });
        }
    }
    paths.sort();
    paths.iter().map(|p| read_pem(p)).collect()
}
