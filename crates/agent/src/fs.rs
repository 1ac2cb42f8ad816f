//! The agent's only file I/O primitives.
//!
//! Owns: reading files with errors that name the path, and atomic writes
//! (temp file in the same directory + fsync + rename + fsync of the directory).
//! Does not: decide what is written or where; callers pass paths and bytes.
//! Invariants: a reader never sees a half-written file written through
//! [`write_atomic`]; files are created with the mode the caller asks for (never
//! wider than that, whatever the umask); no secret is ever part of an error text
//! (errors carry the path and the OS error only).
//! Limitations: Unix only (modes, directory fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file-system operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect {path}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// The path the failed operation was about.
    pub fn path(&self) -> &Path {
        match self {
            FsError::Read { path, .. }
            | FsError::Write { path, .. }
            | FsError::CreateDir { path, .. }
            | FsError::Metadata { path, .. }
            | FsError::Remove { path, .. } => path,
        }
    }

    /// True when the error is "the file does not exist".
    pub fn is_not_found(&self) -> bool {
        let source = match self {
            FsError::Read { source, .. }
            | FsError::Write { source, .. }
            | FsError::CreateDir { source, .. }
            | FsError::Metadata { source, .. }
            | FsError::Remove { source, .. } => source,
        };
        source.kind() == io::ErrorKind::NotFound
    }
}

/// Reads a whole file as UTF-8.
pub fn read_to_string(path: &Path) -> Result<String, FsError> {
    #[expect(clippy::disallowed_methods, reason = "this is the wrapper")]
    fs::read_to_string(path).map_err(|source| FsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a whole file as bytes.
pub fn read(path: &Path) -> Result<Vec<u8>, FsError> {
    fs::read(path).map_err(|source| FsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file, returning `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FsError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates a directory and its parents; the last component gets `mode`.
pub fn create_dir_all(path: &Path, mode: u32) -> Result<(), FsError> {
    let err = |source| FsError::CreateDir {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        fs::create_dir_all(path).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with file mode `mode`.
///
/// The data goes to a temporary file in the same directory, which is fsynced and
/// renamed over `path`; then the directory is fsynced so the rename survives a
/// power cut. Readers see either the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = parent_dir(path);
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; it can never widen it, but make it exact.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        #[expect(clippy::disallowed_methods, reason = "this is the wrapper")]
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        // Best effort: a stale temp file is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Appends `bytes` to `path` (creating it with `mode`) and fsyncs the file.
pub fn append_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_data().map_err(err)?;
    if !existed {
        sync_dir(&parent_dir(path)).map_err(err)?;
    }
    Ok(())
}

/// Reads `len` bytes at `offset` (fewer when the file ends first).
pub fn read_range(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
    use std::io::{Read, Seek, SeekFrom};
    let err = |source| FsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    file.seek(SeekFrom::Start(offset)).map_err(err)?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf).map_err(err)?;
    Ok(buf)
}

/// Identity of a file's current content as far as metadata tells: changes whenever the
/// file is replaced (inode) or rewritten (length, modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub inode: u64,
    pub len: u64,
    pub modified_ns: i128,
}

/// The file's [`FileStamp`], or `None` when it does not exist.
pub fn stamp(path: &Path) -> Result<Option<FileStamp>, FsError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(FileStamp {
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FsError::Metadata {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The entries of a directory (full paths, sorted); a missing directory is empty.
pub fn list_dir(path: &Path) -> Result<Vec<PathBuf>, FsError> {
    let err = |source| FsError::Read {
        path: path.to_owned(),
        source,
    };
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(err(source)),
    };
    let mut out = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    out.sort();
    Ok(out)
}

/// Removes a file; a missing file is not an error.
pub fn remove_file_if_exists(path: &Path) -> Result<(), FsError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FsError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Sets the permission bits of an existing path.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), FsError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| FsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Removes a directory and everything in it; a missing directory is not an error.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<(), FsError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FsError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Owner, permission bits and kind of a path (symlinks followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub uid: u32,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub is_file: bool,
}

/// Like [`owner_and_mode`], plus the kind; `None` when the path does not exist.
pub fn stat_optional(path: &Path) -> Result<Option<FileStat>, FsError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(FileStat {
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            is_file: meta.is_file(),
        })),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FsError::Metadata {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The path with every symlink resolved, `None` when it does not resolve.
pub fn canonical(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok()
}

/// Owner uid and permission bits (`st_mode & 0o7777`) of a path.
pub fn owner_and_mode(path: &Path) -> Result<(u32, u32), FsError> {
    let meta = fs::metadata(path).map_err(|source| FsError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    Ok((meta.uid(), meta.mode() & 0o7777))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let unique = uuid::Uuid::new_v4().simple();
    parent_dir(path).join(format!(".{name}.{unique}.tmp"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(read_to_string(&path).unwrap(), "two");
        let (_, mode) = owner_and_mode(&path).unwrap();
        assert_eq!(mode, 0o600);
        // No temp files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let err = read_to_string(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), "cannot read /nonexistent/agent.toml");
    }

    #[test]
    fn read_optional_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_optional(&dir.path().join("nope")).unwrap().is_none());
    }

    #[test]
    fn append_creates_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        append_synced(&path, b"a\n", 0o600).unwrap();
        append_synced(&path, b"b\n", 0o600).unwrap();
        assert_eq!(read_to_string(&path).unwrap(), "a\nb\n");
    }
}
