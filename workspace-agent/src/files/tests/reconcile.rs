//! The reconciler without inotify: hints in, events out, checked against the disk.

use std::collections::BTreeMap;

use super::{fixture, kinds, replay};
use crate::files::watch::batch::Batch;
use crate::files::watch::reconcile::{DirWatches, Reconciler};
use crate::files::{EntryKind, FileEvent};

struct NoWatches;

impl DirWatches for NoWatches {
    fn watch(&mut self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn unwatch(&mut self, _: &str) {}
}

fn started(f: &super::Fixture) -> (Reconciler, BTreeMap<String, EntryKind>) {
    let mut reconciler = Reconciler::new(f.ws.clone());
    reconciler.start(&mut NoWatches).unwrap();
    let model = reconciler.model().clone();
    (reconciler, model)
}

fn sh(f: &super::Fixture, script: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&f.root)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

#[tokio::test]
async fn rescan_rebuilds_any_change() {
    let f = fixture();
    sh(
        &f,
        "mkdir -p a/b c && echo 1 > a/b/f && echo 2 > c/g && echo 3 > top",
    );
    let (mut reconciler, mut replayed) = started(&f);
    assert_eq!(replayed, kinds(&f.ws).await);
    sh(
        &f,
        "rm -r a && mkdir c/new && echo 4 > c/new/h && rm top && mkdir top && ln -s c link",
    );
    let batch = Batch {
        rescan: true,
        ..Batch::default()
    };
    for event in reconciler.flush(batch, &mut NoWatches) {
        replay(&mut replayed, &event);
    }
    assert_eq!(&replayed, reconciler.model());
    assert_eq!(replayed, kinds(&f.ws).await);
}

#[tokio::test]
async fn paired_rename_is_one_event_and_replace_is_a_modify() {
    let f = fixture();
    sh(&f, "mkdir d && echo 1 > d/f && echo 2 > g");
    let (mut reconciler, _) = started(&f);
    sh(&f, "mv d e && echo 3 > .huddle-tmp-x && mv .huddle-tmp-x g");
    let mut batch = Batch::default();
    batch.renamed(Some("d".into()), Some("e".into()));
    batch.moved("d".into());
    batch.moved("e".into());
    batch.renamed(None, Some("g".into())); // from a hidden temporary file
    let events = reconciler.flush(batch, &mut NoWatches);
    assert_eq!(
        events,
        vec![
            FileEvent::Renamed {
                from: "d".into(),
                to: "e".into()
            },
            FileEvent::Modified { path: "g".into() },
        ]
    );
    assert_eq!(reconciler.model(), &kinds(&f.ws).await);
}

#[tokio::test]
async fn created_and_deleted_within_a_window_is_nothing() {
    let f = fixture();
    let (mut reconciler, _) = started(&f);
    sh(
        &f,
        "echo 1 > tmp && rm tmp && rm -f x && mkdir x && rmdir x",
    );
    let mut batch = Batch::default();
    batch.changed("tmp".into());
    batch.changed("x".into());
    assert!(reconciler.flush(batch, &mut NoWatches).is_empty());
}

#[tokio::test]
async fn new_folder_contents_are_found_by_scanning() {
    let f = fixture();
    let (mut reconciler, mut replayed) = started(&f);
    sh(&f, "mkdir -p n/m && echo 1 > n/m/f && echo 2 > n/g");
    let mut batch = Batch::default();
    batch.changed("n".into()); // the only hint inotify could give before `n` was watched
    let events = reconciler.flush(batch, &mut NoWatches);
    for event in &events {
        replay(&mut replayed, event);
    }
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(replayed, kinds(&f.ws).await);
}
