//! No path may leave the workspace: every escape attempt fails and changes nothing on disk.

use std::os::unix::fs::symlink;

use super::{fixture, snapshot};
use crate::files::{FileError, MAX_NAME_BYTES, MAX_PATH_BYTES, Workspace};

/// Tries every operation with `path` (as source and as target) and checks that each fails and
/// that neither the workspace nor the outside folder changed.
async fn all_operations_fail(ws: &Workspace, roots: &[&std::path::Path], path: &str) {
    let before: Vec<_> = roots.iter().map(|r| snapshot(r)).collect();
    assert!(ws.resolve(path).is_err(), "resolve({path:?})");
    assert!(
        ws.create_file(path, "x").await.is_err(),
        "create_file({path:?})"
    );
    assert!(ws.create_dir(path).await.is_err(), "create_dir({path:?})");
    assert!(
        ws.write_text(path, "x").await.is_err(),
        "write_text({path:?})"
    );
    assert!(
        ws.write_bytes(path, b"x").await.is_err(),
        "write_bytes({path:?})"
    );
    assert!(ws.read_text(path).await.is_err(), "read_text({path:?})");
    assert!(ws.read_bytes(path).await.is_err(), "read_bytes({path:?})");
    assert!(
        ws.rename("inside.txt", path).await.is_err(),
        "rename to {path:?}"
    );
    let after: Vec<_> = roots.iter().map(|r| snapshot(r)).collect();
    assert_eq!(before, after, "disk changed by attempts on {path:?}");
}

#[tokio::test]
async fn lexical_escapes_are_refused() {
    let f = fixture();
    std::fs::write(f.root.join("inside.txt"), "in").unwrap();
    std::fs::create_dir(f.root.join("a")).unwrap();
    for path in [
        "../x",
        "a/../../x",
        "a/..",
        "..",
        "/etc/passwd",
        "/",
        "a\0b",
        "../outside/secret.txt",
    ] {
        all_operations_fail(&f.ws, &[&f.root, &f.outside], path).await;
        assert!(f.ws.delete(path, true).await.is_err(), "delete({path:?})");
        assert!(
            f.ws.rename(path, "moved").await.is_err(),
            "rename from {path:?}"
        );
    }
    assert_eq!(snapshot(&f.outside).len(), 1);
}

#[test]
fn each_lexical_refusal_has_its_own_error() {
    let f = fixture();
    let ws = &f.ws;
    assert!(matches!(
        ws.resolve("../x"),
        Err(FileError::ParentComponent(_))
    ));
    assert!(matches!(
        ws.resolve("a/../../x"),
        Err(FileError::ParentComponent(_))
    ));
    assert!(matches!(
        ws.resolve("/etc/passwd"),
        Err(FileError::AbsolutePath(_))
    ));
    assert!(matches!(ws.resolve("a\0b"), Err(FileError::NulByte)));
    assert!(matches!(ws.resolve("//x"), Err(FileError::AbsolutePath(_))));
    for empty in ["", ".", "./", ".//.", "./././"] {
        assert!(
            matches!(ws.resolve(empty), Err(FileError::EmptyPath)),
            "{empty:?}"
        );
    }
    let long = "a/".repeat(MAX_PATH_BYTES / 2 + 1);
    assert!(matches!(
        ws.resolve(&long),
        Err(FileError::PathTooLong { .. })
    ));
    let long_name = "n".repeat(MAX_NAME_BYTES + 1);
    assert!(matches!(
        ws.resolve(&long_name),
        Err(FileError::NameTooLong { .. })
    ));
    // Messages say what is wrong.
    let message = ws.resolve("../x").unwrap_err().to_string();
    assert!(
        message.contains("..") && message.contains("../x"),
        "{message}"
    );
}

#[test]
fn paths_are_normalized() {
    let f = fixture();
    assert_eq!(f.ws.resolve("a//b/./c").unwrap(), f.root.join("a/b/c"));
    assert_eq!(f.ws.resolve("./a/").unwrap(), f.root.join("a"));
}

#[tokio::test]
async fn link_to_etc_is_refused() {
    let f = fixture();
    std::fs::write(f.root.join("inside.txt"), "in").unwrap();
    symlink("/etc", f.root.join("etc_link")).unwrap();
    assert!(matches!(
        f.ws.resolve("etc_link"),
        Err(FileError::SymlinkEscape(_))
    ));
    assert!(matches!(
        f.ws.resolve("etc_link/passwd"),
        Err(FileError::SymlinkEscape(_))
    ));
    for path in ["etc_link", "etc_link/passwd", "etc_link/huddle-test-new"] {
        all_operations_fail(&f.ws, &[&f.root, &f.outside], path).await;
    }
    assert!(!std::path::Path::new("/etc/huddle-test-new").exists());
}

#[tokio::test]
async fn writing_through_a_linked_folder_is_refused() {
    let f = fixture();
    std::fs::write(f.root.join("inside.txt"), "in").unwrap();
    symlink(&f.outside, f.root.join("out")).unwrap();
    for path in ["out/secret.txt", "out/new.txt", "out/sub/new.txt", "out"] {
        all_operations_fail(&f.ws, &[&f.root, &f.outside], path).await;
    }
    let before = snapshot(&f.outside);
    assert!(f.ws.delete("out/secret.txt", false).await.is_err());
    assert!(f.ws.rename("out/secret.txt", "stolen.txt").await.is_err());
    assert_eq!(snapshot(&f.outside), before);
    // A link inside a real folder, and a link to a link, are caught too.
    std::fs::create_dir(f.root.join("real")).unwrap();
    symlink(&f.outside, f.root.join("real/deep")).unwrap();
    symlink(f.root.join("out"), f.root.join("chain")).unwrap();
    for path in ["real/deep/secret.txt", "chain/secret.txt", "chain/x"] {
        all_operations_fail(&f.ws, &[&f.root, &f.outside], path).await;
    }
    // Deleting the link removes the link, never what it points to.
    f.ws.delete("out", true).await.unwrap();
    assert!(!f.root.join("out").exists());
    assert_eq!(snapshot(&f.outside), before);
}

#[tokio::test]
async fn dangling_link_is_not_written_through() {
    let f = fixture();
    std::fs::write(f.root.join("inside.txt"), "in").unwrap();
    symlink(f.outside.join("created-by-attack"), f.root.join("dangling")).unwrap();
    all_operations_fail(&f.ws, &[&f.root, &f.outside], "dangling").await;
    assert!(!f.outside.join("created-by-attack").exists());
    // A loop leads nowhere as well.
    symlink("loop", f.root.join("loop")).unwrap();
    all_operations_fail(&f.ws, &[&f.root, &f.outside], "loop").await;
}

#[tokio::test]
async fn links_inside_the_workspace_work() {
    let f = fixture();
    std::fs::create_dir(f.root.join("dir")).unwrap();
    std::fs::write(f.root.join("dir/a.txt"), "hello").unwrap();
    symlink("dir/a.txt", f.root.join("alias")).unwrap();
    symlink("dir", f.root.join("dir_alias")).unwrap();
    assert_eq!(f.ws.read_text("alias").await.unwrap(), "hello");
    assert_eq!(f.ws.read_text("dir_alias/a.txt").await.unwrap(), "hello");
    // Writing through the link updates the target and keeps the link.
    f.ws.write_text("alias", "bye").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(f.root.join("dir/a.txt")).unwrap(),
        "bye"
    );
    assert!(
        std::fs::symlink_metadata(f.root.join("alias"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
