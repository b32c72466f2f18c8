//! A destination directory that appears only when complete.
//!
//! Content is assembled in a hidden sibling (`.<name>.partial-XXXX`) and renamed into place. When
//! the destination already exists (an empty mount point, which cannot be replaced by a rename),
//! the staging directory is created inside it and its entries are moved up one by one.

use std::fs;
use std::path::{Path, PathBuf};

use kaito_core::ErrorKind;

use crate::error::{Error, Result};

/// A staging directory for `dest`; dropped without [`Staging::commit`] it is removed.
pub struct Staging {
    dir: tempfile::TempDir,
    dest: PathBuf,
    dest_existed: bool,
}

impl Staging {
    /// Prepares staging for `dest`, which must be absent or an empty directory.
    pub fn new(dest: &Path) -> Result<Self> {
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dest")
            .to_string();
        let dest_existed = match fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::artifact(
                        ErrorKind::InvalidInput,
                        dest.display().to_string(),
                        "destination directory is not empty",
                    ));
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(dest, e)),
        };
        let parent = if dest_existed {
            dest.to_path_buf()
        } else {
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            parent.to_path_buf()
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        Ok(Self {
            dir,
            dest: dest.to_path_buf(),
            dest_existed,
        })
    }

    /// Where content is assembled.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the assembled content to the destination.
    pub fn commit(self) -> Result<()> {
        if !self.dest_existed {
            let staged = self.dir.keep();
            return fs::rename(&staged, &self.dest).map_err(|e| {
                let _ = fs::remove_dir_all(&staged);
                Error::io(&self.dest, e)
            });
        }
        let entries = fs::read_dir(self.dir.path()).map_err(|e| Error::io(self.dir.path(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(self.dir.path(), e))?;
            let to = self.dest.join(entry.file_name());
            fs::rename(entry.path(), &to).map_err(|e| Error::io(&to, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_on_commit_and_leaves_nothing_when_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let staging = Staging::new(&dest).unwrap();
        fs::write(staging.path().join("f"), b"x").unwrap();
        drop(staging);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

        let staging = Staging::new(&dest).unwrap();
        fs::write(staging.path().join("f"), b"x").unwrap();
        assert!(!dest.exists());
        staging.commit().unwrap();
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"x");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn fills_an_existing_empty_directory_and_refuses_a_full_one() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = Staging::new(tmp.path()).unwrap();
        fs::write(staging.path().join("f"), b"x").unwrap();
        staging.commit().unwrap();
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
        let err = Staging::new(tmp.path()).err().unwrap();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
