//! PBT's checkpoint folders: each trial reads and writes its checkpoint in
//! a folder of its own, which starts as a copy of its parent's (the trial
//! whose weights it continues). The copy is made under a temporary name
//! and renamed into place, so an interrupted copy is never mistaken for a
//! checkpoint; a folder that exists already is kept (a trial started again
//! after a crash resumes from its own checkpoint).
//!
//! `ktune run` keeps the folder in the trial's folder
//! ([`local_folder`]); in a cluster an init container runs
//! `ktune copy-checkpoint`, which calls [`start_from`] on the experiment's
//! volume.

use std::io;
use std::path::{Path, PathBuf};

/// The name of a trial's checkpoint folder inside its trial folder.
pub const FOLDER: &str = "checkpoint";

/// Why a checkpoint folder could not be made.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint folder {path}: {source}")]
pub struct CheckpointError {
    /// The path that failed.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError {
        path: path.to_owned(),
        source,
    }
}

/// `ktune run`'s checkpoint folder of `trial`, `<trials_dir>/<trial>/checkpoint`,
/// made ready ([`start_from`] the parent's folder).
///
/// # Errors
/// [`CheckpointError`] when a folder cannot be read or written.
pub fn local_folder(
    trials_dir: &Path,
    trial: &str,
    parent: Option<&str>,
) -> Result<PathBuf, CheckpointError> {
    let folder = trials_dir.join(trial).join(FOLDER);
    let parent = parent.map(|p| trials_dir.join(p).join(FOLDER));
    start_from(&folder, parent.as_deref())?;
    Ok(folder)
}

/// Makes `folder` ready: kept when it holds anything, else a copy of
/// `parent`'s folder (made beside it and renamed into place), else empty —
/// also when the parent left no checkpoint (its trial then starts afresh).
/// An empty folder is not a checkpoint: a kubelet may have made it for a
/// volume's `subPath` before the copy.
///
/// # Errors
/// [`CheckpointError`] when a folder cannot be read or written.
pub fn start_from(folder: &Path, parent: Option<&Path>) -> Result<(), CheckpointError> {
    if let Ok(mut entries) = std::fs::read_dir(folder) {
        if entries.next().is_some() || parent.is_none_or(|p| !p.is_dir()) {
            return Ok(());
        }
        std::fs::remove_dir(folder).map_err(at(folder))?;
    }
    let Some(parent) = parent.filter(|p| p.is_dir()) else {
        if let Some(missing) = parent {
            tracing::warn!(parent = %missing.display(), "the parent trial left no checkpoint folder: starting empty");
        }
        return std::fs::create_dir_all(folder).map_err(at(folder));
    };
    let mut partial = folder.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(at(&partial))?;
    }
    copy_tree(parent, &partial)?;
    std::fs::rename(&partial, folder).map_err(at(folder))
}

/// Copies the folder `from` to `to` (created), files and sub-folders;
/// symbolic links are copied as links.
fn copy_tree(from: &Path, to: &Path) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(to).map_err(at(to))?;
    for entry in std::fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(at(&source))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(at(&source))?;
            std::os::unix::fs::symlink(link, &target).map_err(at(&target))?;
        } else {
            std::fs::copy(&source, &target).map_err(at(&target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder of the test's own.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ktune-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_child_starts_from_a_copy_of_its_parents_folder() {
        let dir = scratch("copy");
        let parent = local_folder(dir.as_path(), "t1", None).unwrap();
        std::fs::create_dir_all(parent.join("sub")).unwrap();
        std::fs::write(parent.join("model.ckpt"), "step=40").unwrap();
        std::fs::write(parent.join("sub/state"), "x").unwrap();

        let child = local_folder(dir.as_path(), "t2", Some("t1")).unwrap();
        assert_eq!(child, dir.as_path().join("t2/checkpoint"));
        assert_eq!(
            std::fs::read_to_string(child.join("model.ckpt")).unwrap(),
            "step=40"
        );
        assert_eq!(
            std::fs::read_to_string(child.join("sub/state")).unwrap(),
            "x"
        );
        assert!(!dir.as_path().join("t2/checkpoint.partial").exists());

        // The child's own progress survives its restart: no second copy.
        std::fs::write(child.join("model.ckpt"), "step=60").unwrap();
        local_folder(dir.as_path(), "t2", Some("t1")).unwrap();
        assert_eq!(
            std::fs::read_to_string(child.join("model.ckpt")).unwrap(),
            "step=60"
        );
    }

    #[test]
    fn an_interrupted_copy_is_redone_and_a_missing_parent_starts_empty() {
        let dir = scratch("redo");
        let parent = local_folder(dir.as_path(), "t1", None).unwrap();
        std::fs::write(parent.join("w"), "1").unwrap();
        std::fs::create_dir_all(dir.as_path().join("t2/checkpoint.partial")).unwrap();
        std::fs::write(dir.as_path().join("t2/checkpoint.partial/junk"), "").unwrap();
        let child = local_folder(dir.as_path(), "t2", Some("t1")).unwrap();
        assert!(child.join("w").exists());
        assert!(!child.join("junk").exists());

        let orphan = local_folder(dir.as_path(), "t3", Some("never-ran")).unwrap();
        assert_eq!(std::fs::read_dir(orphan).unwrap().count(), 0);

        // An empty folder made before the copy (a kubelet's subPath) is filled.
        std::fs::create_dir_all(dir.join("t4/checkpoint")).unwrap();
        let early = local_folder(dir.as_path(), "t4", Some("t1")).unwrap();
        assert!(early.join("w").exists());
    }
}
