//! Writes that matter replace the file in one step: through a symbolic link to its target,
//! never touching a user's own `<file>.tmp`, and leaving no temporary file when they fail.
#![allow(clippy::unwrap_used)]

use tf_train::write_atomic;

#[test]
fn atomic_writes_keep_links_and_the_users_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let users = dir.path().join("link.json.tmp");
    std::fs::write(&users, "mine").unwrap();

    write_atomic(&link, "new").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    assert_eq!(std::fs::read_to_string(&users).unwrap(), "mine");

    // A parent that is a file: the write fails and leaves nothing behind.
    let blocked = target.join("sub").join("out.json");
    assert!(write_atomic(&blocked, "x").is_err());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".tmp") || n == "link.json.tmp"),
        "{names:?}"
    );
}
