//! The watcher against real inotify and real child processes. Waits are deadlines on
//! received events, never fixed sleeps.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout_at};

use super::{fixture, kinds, replay};
use crate::files::{EntryKind, FileEvent, watch};

const DEADLINE: Duration = Duration::from_secs(10);

fn sh(dir: &Path, script: &str) {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{script}: {output:?}");
}

/// Receives until `expected` appears, in order, among the events (others may come between),
/// and returns everything received.
async fn expect(rx: &mut Receiver<FileEvent>, expected: &[FileEvent]) -> Vec<FileEvent> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let mut wanted = expected.iter().peekable();
        for event in &seen {
            if wanted.peek() == Some(&event) {
                wanted.next();
            }
        }
        if wanted.peek().is_none() {
            return seen;
        }
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("watcher stopped; saw {seen:?}"),
            Err(_) => panic!("timed out waiting for {expected:?}; saw {seen:?}"),
        }
    }
}

/// Replays events onto `tree` until it equals the disk's tree; returns the events.
async fn converge(
    rx: &mut Receiver<FileEvent>,
    tree: &mut BTreeMap<String, EntryKind>,
    disk: &BTreeMap<String, EntryKind>,
) -> Vec<FileEvent> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while tree != disk {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => {
                replay(tree, &event);
                seen.push(event);
            }
            Ok(None) => panic!("watcher stopped; saw {seen:?}"),
            Err(_) => panic!("timed out: replayed {tree:?} != disk {disk:?}; saw {seen:?}"),
        }
    }
    seen
}

fn created(path: &str, kind: EntryKind) -> FileEvent {
    FileEvent::Created {
        path: path.into(),
        kind,
    }
}

#[tokio::test]
async fn child_process_changes_become_discrete_events() {
    let f = fixture();
    let (_guard, mut rx) = watch(&f.ws).await.unwrap();
    // One step at a time, each awaited, so each is its own batch.
    sh(&f.root, "mkdir d");
    expect(&mut rx, &[created("d", EntryKind::Dir)]).await;
    sh(&f.root, "echo hi > d/f");
    expect(&mut rx, &[created("d/f", EntryKind::File)]).await;
    sh(&f.root, "echo more >> d/f");
    expect(&mut rx, &[FileEvent::Modified { path: "d/f".into() }]).await;
    sh(&f.root, "mv d/f d/g");
    let seen = expect(
        &mut rx,
        &[FileEvent::Renamed {
            from: "d/f".into(),
            to: "d/g".into(),
        }],
    )
    .await;
    assert!(
        !seen.iter().any(|e| matches!(e, FileEvent::Deleted { .. })),
        "{seen:?}"
    );
    sh(&f.root, "mkdir e");
    expect(&mut rx, &[created("e", EntryKind::Dir)]).await;
    sh(&f.root, "mv d/g e/g"); // a move across folders
    expect(
        &mut rx,
        &[FileEvent::Renamed {
            from: "d/g".into(),
            to: "e/g".into(),
        }],
    )
    .await;
    sh(&f.root, "rm e/g");
    expect(&mut rx, &[FileEvent::Deleted { path: "e/g".into() }]).await;
    sh(&f.root, "mv d e/d2 && rm -r e");
    expect(&mut rx, &[FileEvent::Deleted { path: "e".into() }]).await;
}

#[tokio::test]
async fn a_burst_replays_to_the_disk() {
    let f = fixture();
    sh(&f.root, "mkdir old && echo 1 > old/keep && echo 2 > gone");
    let mut tree = kinds(&f.ws).await;
    let (_guard, mut rx) = watch(&f.ws).await.unwrap();
    sh(
        &f.root,
        "mkdir d && echo hi > d/f && mv d/f d/g && rm d/g \
         && mkdir -p n/m && echo x > n/m/deep && mv old n/m/old && rm gone",
    );
    let disk = kinds(&f.ws).await;
    // How the burst is cut into batches depends on timing (on a loaded machine `d/f` may be
    // seen, usually it is not); what must hold is that the events lead to the disk's tree.
    converge(&mut rx, &mut tree, &disk).await;
}

#[tokio::test]
async fn own_atomic_writes_are_one_modify() {
    let f = fixture();
    f.ws.create_file("a.txt", "1").await.unwrap();
    let (_guard, mut rx) = watch(&f.ws).await.unwrap();
    f.ws.write_text("a.txt", "2").await.unwrap();
    let seen = expect(
        &mut rx,
        &[FileEvent::Modified {
            path: "a.txt".into(),
        }],
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    // Then a marker, to be sure nothing else (a temp file) was reported in between.
    f.ws.create_file("marker", "").await.unwrap();
    let seen = expect(&mut rx, &[created("marker", EntryKind::File)]).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test]
async fn git_internals_are_ignored() {
    let f = fixture();
    let (_guard, mut rx) = watch(&f.ws).await.unwrap();
    sh(&f.root, "mkdir -p .git/objects && echo ref > .git/HEAD");
    expect(&mut rx, &[created(".git", EntryKind::Dir)]).await;
    sh(
        &f.root,
        "echo x > .git/index && mkdir .git/refs && touch marker",
    );
    let seen = expect(&mut rx, &[created("marker", EntryKind::File)]).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test]
async fn git_checkout_is_one_event_per_changed_file() {
    let f = fixture();
    let git = "git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main \
               -c commit.gpgsign=false";
    let has_git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok();
    if !has_git {
        return;
    }
    sh(
        &f.root,
        &format!(
            "{git} init -q . && mkdir src && echo a > src/a && echo b > b && echo c > c \
             && {git} add -A && {git} commit -qm one && {git} checkout -qb other \
             && echo a2 > src/a && {git} rm -q b && echo d > d && {git} add -A \
             && {git} commit -qm two && {git} checkout -q main"
        ),
    );
    let mut tree = kinds(&f.ws).await;
    let (_guard, mut rx) = watch(&f.ws).await.unwrap();
    sh(&f.root, &format!("{git} checkout -q other"));
    let disk = kinds(&f.ws).await;
    let mut seen = converge(&mut rx, &mut tree, &disk).await;
    // `src/a` changed too, which the tree alone cannot show.
    let src_a = FileEvent::Modified {
        path: "src/a".into(),
    };
    if !seen.contains(&src_a) {
        seen.extend(expect(&mut rx, &[src_a]).await);
    }
    let mut per_path: BTreeMap<String, usize> = BTreeMap::new();
    for event in &seen {
        let path = match event {
            FileEvent::Created { path, .. }
            | FileEvent::Deleted { path }
            | FileEvent::Modified { path } => path,
            FileEvent::Renamed { to, .. } => to,
        };
        assert!(!path.starts_with(".git/"), "{seen:?}");
        *per_path.entry(path.clone()).or_default() += 1;
    }
    assert!(per_path.values().all(|&n| n == 1), "{seen:?}");
    assert!(
        seen.contains(&FileEvent::Deleted { path: "b".into() }),
        "{seen:?}"
    );
    assert!(seen.contains(&created("d", EntryKind::File)), "{seen:?}");
}

#[tokio::test]
async fn move_into_a_folder_made_in_the_same_burst() {
    let f = fixture();
    sh(&f.root, "mkdir d && echo 1 > d/g");
    let (_guard, mut rx) = watch(&f.ws).await.unwrap();
    // Usually `e` is not watched yet when `g` arrives, so inotify cannot pair the rename: the
    // move is then delete + create, `e/g` found by scanning the new folder. On a loaded machine
    // `mkdir e` may be its own batch, and the move a rename. Either way the tree must follow.
    let mut tree = kinds(&f.ws).await;
    sh(&f.root, "mkdir e && mv d/g e/g");
    let disk = kinds(&f.ws).await;
    let seen = converge(&mut rx, &mut tree, &disk).await;
    let renamed = FileEvent::Renamed {
        from: "d/g".into(),
        to: "e/g".into(),
    };
    assert!(
        seen.contains(&renamed) || seen.contains(&created("e/g", EntryKind::File)),
        "{seen:?}"
    );
}
