//! Moving accounts in and out: `import` and `export`, in one JSON Lines
//! format ([`format`]).

pub(crate) mod export;
pub(crate) mod format;
pub(crate) mod import;

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Creates (or, with `truncate`, replaces) a file only its owner can read
/// and write (0600 whatever the umask): rejects and exports may hold
/// secrets or hashes. Without `truncate`, an existing file is refused
/// rather than overwritten, so a file of secrets is never lost.
pub(crate) fn private_file(path: &Path, truncate: bool) -> Result<File, Box<dyn Error>> {
    let mut options = OpenOptions::new();
    options.write(true);
    if truncate {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists: give a new file, so that none of its secrets is overwritten",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        }
    })?;
    #[cfg(unix)]
    {
        // An existing file replaced keeps its mode: make it private too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}
