//! Key files in the data directory (the vault's keys, the backup key): made on first use,
//! readable by this user only.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::AnyError;

/// `given`, or else `data_dir/name`, made with `contents()` when it does not exist (and the log
/// says so, with `why_keep` telling what the key guards).
pub fn locate(
    given: Option<&Path>,
    data_dir: &Path,
    name: &str,
    contents: impl FnOnce() -> String,
    why_keep: &str,
) -> Result<PathBuf, AnyError> {
    if let Some(file) = given {
        return Ok(file.to_path_buf());
    }
    let file = data_dir.join(name);
    if !file.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(data_dir)?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        out.write_all(contents().as_bytes())?;
        tracing::info!(file = %file.display(), "generated a key ({why_keep})");
    }
    Ok(file)
}
