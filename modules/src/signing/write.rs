//! Writing files atomically: a temporary file in the same directory, renamed over the target,
//! so a reader sees the old bytes or the new ones and never a partial file.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::Error;

/// Writes `bytes` to `path` with permission bits `mode`, replacing it atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let error = |source| Error::Write { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new().prefix(".kiln-").tempfile_in(dir).map_err(error)?;
    temp.as_file().set_permissions(Permissions::from_mode(mode)).map_err(error)?;
    temp.write_all(bytes).map_err(error)?;
    temp.persist(path).map_err(|e| error(e.error))?;
    Ok(())
}
