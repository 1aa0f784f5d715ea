use std::os::unix::fs::PermissionsExt;

use super::fixture;
use crate::files::{Content, EntryKind, FileError, MAX_TREE_ENTRIES, TEXT_LIMIT, TRANSFER_LIMIT};

#[tokio::test]
async fn create_rename_move_delete_round_trip() {
    let f = fixture();
    let ws = &f.ws;
    ws.create_file("notes/today.md", "# hi\n").await.unwrap(); // parents are created
    assert_eq!(ws.read_text("notes/today.md").await.unwrap(), "# hi\n");
    assert!(matches!(
        ws.create_file("notes/today.md", "again").await,
        Err(FileError::AlreadyExists(p)) if p == "notes/today.md"
    ));
    ws.create_dir("archive").await.unwrap();
    assert!(matches!(
        ws.create_dir("archive").await,
        Err(FileError::AlreadyExists(_))
    ));

    ws.rename("notes/today.md", "notes/yesterday.md")
        .await
        .unwrap();
    ws.rename("notes/yesterday.md", "archive/yesterday.md")
        .await
        .unwrap(); // a move
    ws.rename("notes", "archive/notes").await.unwrap(); // a folder move
    assert!(f.root.join("archive/yesterday.md").is_file());
    assert!(f.root.join("archive/notes").is_dir());
    assert!(!f.root.join("notes").exists());

    ws.delete("archive/yesterday.md", false).await.unwrap();
    ws.delete("archive/notes", false).await.unwrap(); // empty
    ws.delete("archive", false).await.unwrap();
    assert!(std::fs::read_dir(&f.root).unwrap().next().is_none());
    assert!(matches!(
        ws.delete("archive", false).await,
        Err(FileError::NotFound(_))
    ));
}

#[tokio::test]
async fn rename_refuses_existing_target_and_moving_into_itself() {
    let f = fixture();
    let ws = &f.ws;
    ws.create_file("a.txt", "a").await.unwrap();
    ws.create_file("b.txt", "b").await.unwrap();
    ws.create_dir("d/e").await.unwrap();
    assert!(matches!(
        ws.rename("a.txt", "b.txt").await,
        Err(FileError::AlreadyExists(_))
    ));
    assert_eq!(std::fs::read_to_string(f.root.join("b.txt")).unwrap(), "b");
    assert!(matches!(
        ws.rename("d", "d/e/d").await,
        Err(FileError::MoveIntoItself { .. })
    ));
    assert!(matches!(
        ws.rename("d", "d").await,
        Err(FileError::AlreadyExists(_))
    ));
    // Into itself through a link in the target's folders.
    std::os::unix::fs::symlink("d/e", f.root.join("e_alias")).unwrap();
    assert!(matches!(
        ws.rename("d", "e_alias/d").await,
        Err(FileError::MoveIntoItself { .. })
    ));
    assert!(matches!(
        ws.rename("missing", "x").await,
        Err(FileError::NotFound(_))
    ));
    assert!(matches!(
        ws.rename("a.txt", "nowhere/a.txt").await,
        Err(FileError::NotFound(_))
    ));
    assert!(f.root.join("d/e").is_dir());
}

#[tokio::test]
async fn non_empty_folder_is_deleted_only_when_allowed() {
    let f = fixture();
    let ws = &f.ws;
    ws.create_file("d/sub/f.txt", "x").await.unwrap();
    assert!(
        matches!(ws.delete("d", false).await, Err(FileError::DirectoryNotEmpty(p)) if p == "d")
    );
    assert!(f.root.join("d/sub/f.txt").exists());
    ws.delete("d", true).await.unwrap();
    assert!(!f.root.join("d").exists());
}

#[tokio::test]
async fn text_and_binary_reads_and_writes() {
    let f = fixture();
    let ws = &f.ws;
    std::fs::write(f.root.join("bin"), [0u8, 1, 2, 255]).unwrap();
    assert!(matches!(
        ws.read_text("bin").await,
        Err(FileError::NotText(_))
    ));
    assert_eq!(ws.read_bytes("bin").await.unwrap(), vec![0, 1, 2, 255]);
    std::fs::write(f.root.join("big.txt"), vec![b'a'; TEXT_LIMIT + 1]).unwrap();
    assert!(matches!(
        ws.read_text("big.txt").await,
        Err(FileError::NotText(_))
    ));
    assert!(matches!(
        ws.read_text("missing").await,
        Err(FileError::NotFound(_))
    ));
    ws.create_dir("dir").await.unwrap();
    assert!(matches!(
        ws.read_text("dir").await,
        Err(FileError::IsADirectory(_))
    ));
    assert!(ws.write_text("dir", "x").await.is_err());

    ws.write_bytes("up/load.bin", &[9, 8, 7]).await.unwrap();
    assert_eq!(
        std::fs::read(f.root.join("up/load.bin")).unwrap(),
        vec![9, 8, 7]
    );
    let too_big = vec![0u8; TRANSFER_LIMIT as usize + 1];
    assert!(matches!(
        ws.write_bytes("huge.bin", &too_big).await,
        Err(FileError::TooLarge { .. })
    ));
    assert!(!f.root.join("huge.bin").exists());
}

#[tokio::test]
async fn write_text_is_atomic_and_keeps_permissions() {
    let f = fixture();
    let ws = &f.ws;
    ws.create_file("run.sh", "echo 1\n").await.unwrap();
    std::fs::set_permissions(
        f.root.join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    ws.write_text("run.sh", "echo 2\n").await.unwrap();
    assert_eq!(ws.read_text("run.sh").await.unwrap(), "echo 2\n");
    let mode = std::fs::metadata(f.root.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // A new file gets ordinary permissions, and no temporary file is left behind.
    ws.write_text("new.txt", "n").await.unwrap();
    let mode = std::fs::metadata(f.root.join("new.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn fifo_is_listed_but_never_opened() {
    let f = fixture();
    let status = std::process::Command::new("mkfifo")
        .arg(f.root.join("pipe"))
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return; // no mkfifo here
    }
    assert!(matches!(
        f.ws.read_text("pipe").await,
        Err(FileError::NotAFile(_))
    ));
    let tree = f.ws.list_tree().await.unwrap();
    assert_eq!(tree.entries[0].content, Content::Unknown);
}

#[tokio::test]
async fn tree_is_sorted_folders_first_and_hides_git_internals() {
    let f = fixture();
    let ws = &f.ws;
    ws.create_file("b.txt", "text").await.unwrap();
    ws.create_file("a.bin", "").await.unwrap();
    std::fs::write(f.root.join("a.bin"), [0u8, 159, 146, 150]).unwrap();
    ws.create_file("z/inner.txt", "").await.unwrap();
    ws.create_file("c/d/deep.txt", "").await.unwrap();
    ws.create_file(".git/HEAD", "ref: refs/heads/main\n")
        .await
        .unwrap();
    std::os::unix::fs::symlink("b.txt", f.root.join("link")).unwrap();
    let tree = ws.list_tree().await.unwrap();
    let rows: Vec<_> = tree
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.kind, e.content))
        .collect();
    use Content::*;
    use EntryKind::*;
    assert_eq!(
        rows,
        vec![
            (".git", Dir, Unknown),
            ("c", Dir, Unknown),
            ("c/d", Dir, Unknown),
            ("c/d/deep.txt", File, Text),
            ("z", Dir, Unknown),
            ("z/inner.txt", File, Text),
            ("a.bin", File, Binary),
            ("b.txt", File, Text),
            ("link", Symlink, Unknown),
        ]
    );
    assert_eq!(tree.entries[7].size, 4);
    assert!(!tree.truncated);
    let entry = ws.entry("c/d/deep.txt").await.unwrap();
    assert_eq!((entry.kind, entry.content), (File, Text));
}

#[tokio::test]
async fn huge_tree_is_truncated() {
    let f = fixture();
    for i in 0..=MAX_TREE_ENTRIES {
        std::fs::write(f.root.join(format!("f{i}")), "").unwrap();
    }
    let tree = f.ws.list_tree().await.unwrap();
    assert!(tree.truncated);
    assert_eq!(tree.entries.len(), MAX_TREE_ENTRIES);
}
