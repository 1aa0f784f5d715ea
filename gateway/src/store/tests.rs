//! Store tests, each run against both real databases: SQLite in a temporary file, and
//! PostgreSQL at `HUDDLE_TEST_DATABASE_URL` (set by `tests/cluster/cluster.sh` inside the test
//! cluster). Without that variable the PostgreSQL tests fail rather than skip: a green run must
//! mean both databases were exercised. For a local run, start a throwaway server, e.g.
//!
//! ```sh
//! pg=/usr/lib/postgresql/15/bin; d=$(mktemp -d); chown postgres $d
//! runuser -u postgres -- $pg/initdb -D $d/data -U huddle --auth=trust
//! runuser -u postgres -- $pg/pg_ctl -D $d/data -o "-c listen_addresses=127.0.0.1 -p 25432 -k $d" start
//! createdb -h 127.0.0.1 -p 25432 -U huddle huddle
//! HUDDLE_TEST_DATABASE_URL=postgres://huddle@127.0.0.1:25432/huddle cargo test -p huddle-gateway
//! ```
//!
//! Each PostgreSQL test migrates and uses a schema of its own (`search_path`), so tests run in
//! parallel against one database and see only their own rows. The schema is dropped when the
//! test passes and kept for inspection when it fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::*;

/// Failures the tests can inject into the store's own code paths.
#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    fail_before_snapshot_complete: Arc<AtomicBool>,
}

impl Faults {
    /// Called inside `put_snapshot`'s transaction, after the row is inserted and before it is
    /// marked complete and committed.
    pub(super) fn before_snapshot_complete(&self) -> Result<()> {
        if self.fail_before_snapshot_complete.load(Ordering::SeqCst) {
            return Err(StoreError::InvalidInput("injected fault".to_owned()));
        }
        Ok(())
    }
}

const DATABASE_URL_VAR: &str = "HUDDLE_TEST_DATABASE_URL";

/// A store on a database of its own, and what is needed to connect again and clean up.
struct TestDb {
    store: Store,
    url: String,
    _dir: Option<TempDir>,
    postgres: Option<(PgPool, String)>,
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("huddle.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    TestDb {
        store,
        url,
        _dir: Some(dir),
        postgres: None,
    }
}

async fn postgres_db() -> TestDb {
    let base = std::env::var(DATABASE_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{DATABASE_URL_VAR} is not set: the PostgreSQL store tests need a real server. \
             scripts/test runs them inside the test cluster, which sets it; to run them \
             locally start a PostgreSQL and set it, e.g. \
             {DATABASE_URL_VAR}=postgres://huddle@127.0.0.1:25432/huddle \
             (see the top of gateway/src/store/tests.rs)"
        )
    });
    let admin = PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR}: cannot connect: {e}"));
    // Lowercase letters and digits only, so it needs no quoting.
    let schema = format!("store_test_{}", new_session_id().unwrap());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend_name(), "postgres");
    TestDb {
        store,
        url,
        _dir: None,
        postgres: Some((admin, schema)),
    }
}

impl TestDb {
    /// Called only when the test passed.
    async fn finish(self) {
        self.store.close().await;
        if let Some((admin, schema)) = self.postgres {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }

    /// Every row of `snapshots` for the session, complete or not.
    async fn snapshot_rows(&self, id: &SessionId) -> i64 {
        on_pool!(self.store, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM snapshots WHERE session_id = $1")
                .bind(id.as_str())
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }
}

/// Runs each named scenario `async fn(&TestDb)` as two tests, `<name>::sqlite` and
/// `<name>::postgres`.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = super::sqlite_db().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = super::postgres_db().await;
                super::$name(&db).await;
                db.finish().await;
            }
        }
    )*};
}

on_both_databases!(
    migrations_are_idempotent,
    session_round_trip,
    state_changes_and_soft_delete,
    activity_only_moves_forward,
    participants_are_unique_per_session,
    snapshots_are_checksummed_and_only_three_kept,
    failed_snapshot_leaves_no_row,
    incomplete_or_corrupt_snapshots_are_never_returned,
    audit_events_newest_first,
    ports_and_visibility,
    an_unreadable_row_does_not_hide_the_others,
);

const T0: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

fn new_session(owner: &str) -> NewSession {
    NewSession {
        id: new_session_id().unwrap(),
        namespace: "huddle-test".to_owned(),
        owner_name: owner.to_owned(),
        created_at: T0,
        idle_timeout: Duration::from_secs(15 * 60),
        max_lifetime: Some(Duration::from_secs(8 * 3600)),
    }
}

fn later(t: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.as_unix_millis() + millis)
}

async fn migrations_are_idempotent(db: &TestDb) {
    let session = db.store.create_session(new_session("ada")).await.unwrap();

    // A second gateway (or a restart) runs the migrations again: nothing changes, nothing lost.
    let again = Store::connect(&db.url).await.unwrap();
    assert_eq!(
        again.get_session(&session.id).await.unwrap(),
        Some(session.clone())
    );
    let expected = match again.backend {
        Backend::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
        Backend::Sqlite(_) => SQLITE_MIGRATIONS.iter().count(),
    };
    let applied: i64 = on_pool!(again, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(applied, i64::try_from(expected).unwrap());
    again.close().await;
    let third = Store::connect(&db.url).await.unwrap();
    assert_eq!(third.list_sessions().await.unwrap(), vec![session]);
    third.close().await;
}

async fn session_round_trip(db: &TestDb) {
    let store = &db.store;
    let new = new_session("ada");
    let created = store.create_session(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.state, SessionState::Running);
    assert_eq!(created.last_activity_at, new.created_at);

    assert_eq!(
        store.get_session(&new.id).await.unwrap(),
        Some(created.clone())
    );

    let mut no_limit = new_session("grace");
    no_limit.max_lifetime = None;
    no_limit.created_at = later(T0, 1);
    let second = store.create_session(no_limit).await.unwrap();
    assert_eq!(
        store
            .get_session(&second.id)
            .await
            .unwrap()
            .unwrap()
            .max_lifetime,
        None
    );
    assert_eq!(
        store.list_sessions().await.unwrap(),
        vec![created.clone(), second]
    );

    let unknown = new_session_id().unwrap();
    assert_eq!(store.get_session(&unknown).await.unwrap(), None);

    assert!(matches!(
        store.create_session(new.clone()).await,
        Err(StoreError::SessionExists(id)) if id == new.id
    ));

    let mut bad = new_session("ada");
    bad.idle_timeout = Duration::ZERO;
    assert!(matches!(
        store.create_session(bad.clone()).await,
        Err(StoreError::InvalidInput(_))
    ));
    bad.idle_timeout = Duration::from_millis(1500);
    assert!(matches!(
        store.create_session(bad.clone()).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(store.get_session(&bad.id).await.unwrap(), None);
}

async fn state_changes_and_soft_delete(db: &TestDb) {
    let store = &db.store;
    let session = store.create_session(new_session("ada")).await.unwrap();
    let id = &session.id;

    store.set_state(id, SessionState::Hibernated).await.unwrap();
    let got = store.get_session(id).await.unwrap().unwrap();
    assert_eq!(got.state, SessionState::Hibernated);
    // Setting the state it already has is fine.
    store.set_state(id, SessionState::Hibernated).await.unwrap();
    store.set_state(id, SessionState::Running).await.unwrap();
    assert_eq!(
        store.get_session(id).await.unwrap().unwrap().state,
        SessionState::Running
    );

    let unknown = new_session_id().unwrap();
    assert!(matches!(
        store.set_state(&unknown, SessionState::Running).await,
        Err(StoreError::SessionNotFound(_))
    ));

    store.put_snapshot(id, b"kept after delete").await.unwrap();
    store.delete_session(id, "ada").await.unwrap();
    assert_eq!(store.get_session(id).await.unwrap(), None);
    assert!(store.list_sessions().await.unwrap().is_empty());
    assert!(matches!(
        store.set_state(id, SessionState::Hibernated).await,
        Err(StoreError::SessionNotFound(_))
    ));
    assert!(matches!(
        store.delete_session(id, "ada").await,
        Err(StoreError::SessionNotFound(_))
    ));
    assert!(matches!(
        store.touch_activity(id, later(T0, 1)).await,
        Err(StoreError::SessionNotFound(_))
    ));
    // Soft delete: the row and its snapshot are still there.
    assert_eq!(db.snapshot_rows(id).await, 1);

    let audit = store.recent_audit(id, 10).await.unwrap();
    assert_eq!(audit.len(), 1, "one delete, one audit event: {audit:?}");
    assert_eq!(audit[0].event.action, "session.delete");
    assert_eq!(audit[0].event.actor, "ada");
    assert_eq!(audit[0].event.session_id.as_ref(), Some(id));
}

async fn activity_only_moves_forward(db: &TestDb) {
    let store = &db.store;
    let session = store.create_session(new_session("ada")).await.unwrap();
    let id = &session.id;
    let last = |store: &Store| {
        let store = store.clone();
        let id = id.clone();
        async move {
            store
                .get_session(&id)
                .await
                .unwrap()
                .unwrap()
                .last_activity_at
        }
    };

    assert!(store.touch_activity(id, later(T0, 5_000)).await.unwrap());
    assert_eq!(last(store).await, later(T0, 5_000));

    // Older and equal times (a slow replica's late write) change nothing.
    assert!(!store.touch_activity(id, later(T0, 4_999)).await.unwrap());
    assert!(!store.touch_activity(id, T0).await.unwrap());
    assert!(!store.touch_activity(id, later(T0, 5_000)).await.unwrap());
    assert_eq!(last(store).await, later(T0, 5_000));

    assert!(store.touch_activity(id, later(T0, 9_000)).await.unwrap());
    assert_eq!(last(store).await, later(T0, 9_000));

    // Concurrent writers in any order: the latest time wins.
    let writes = (0..20).rev().map(|i| {
        let store = store.clone();
        let id = id.clone();
        async move { store.touch_activity(&id, later(T0, 10_000 + i)).await }
    });
    for result in futures_join_all(writes).await {
        result.unwrap();
    }
    assert_eq!(last(store).await, later(T0, 10_019));

    let unknown = new_session_id().unwrap();
    assert!(matches!(
        store.touch_activity(&unknown, T0).await,
        Err(StoreError::SessionNotFound(_))
    ));
}

/// Runs futures concurrently on the test's runtime (the gateway has no `futures` dependency).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn participants_are_unique_per_session(db: &TestDb) {
    let store = &db.store;
    let one = store.create_session(new_session("ada")).await.unwrap();
    let two = store.create_session(new_session("grace")).await.unwrap();
    let person = |user_id: &str, role, millis| NewParticipant {
        user_id: user_id.to_owned(),
        name: format!("{user_id} (name)"),
        role,
        invited_at: later(T0, millis),
    };

    let owner = store
        .add_participant(&one.id, person("u-ada", Role::Owner, 0))
        .await
        .unwrap();
    let viewer = store
        .add_participant(&one.id, person("u-bob", Role::Viewer, 2))
        .await
        .unwrap();
    let editor = store
        .add_participant(&one.id, person("u-cy", Role::Editor, 1))
        .await
        .unwrap();
    assert_eq!(owner.session_id, one.id);

    // The same user again, even with another role, is refused and changes nothing.
    assert!(matches!(
        store.add_participant(&one.id, person("u-bob", Role::Editor, 3)).await,
        Err(StoreError::ParticipantExists { user_id, .. }) if user_id == "u-bob"
    ));
    assert_eq!(
        store.participants(&one.id).await.unwrap(),
        vec![owner, editor, viewer]
    );

    // The same user in another session is a different participant.
    store
        .add_participant(&two.id, person("u-bob", Role::Owner, 0))
        .await
        .unwrap();
    assert_eq!(store.participants(&two.id).await.unwrap().len(), 1);

    let unknown = new_session_id().unwrap();
    assert!(matches!(
        store
            .add_participant(&unknown, person("u-ada", Role::Owner, 0))
            .await,
        Err(StoreError::SessionNotFound(_))
    ));
    assert!(store.participants(&unknown).await.unwrap().is_empty());

    store.delete_session(&two.id, "grace").await.unwrap();
    assert!(matches!(
        store
            .add_participant(&two.id, person("u-dan", Role::Viewer, 0))
            .await,
        Err(StoreError::SessionNotFound(_))
    ));
}

/// A few bytes that differ per `n`, of a length that differs per `n`.
fn tar_bytes(n: u8) -> Vec<u8> {
    (0..(1000 + usize::from(n) * 37))
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
        .collect()
}

async fn snapshots_are_checksummed_and_only_three_kept(db: &TestDb) {
    let store = &db.store;
    let session = store.create_session(new_session("ada")).await.unwrap();
    let other = store.create_session(new_session("grace")).await.unwrap();
    let id = &session.id;
    assert_eq!(store.latest_snapshot(id).await.unwrap(), None);

    let other_meta = store.put_snapshot(&other.id, &tar_bytes(99)).await.unwrap();

    let mut metas = Vec::new();
    for n in 1..=5 {
        let data = tar_bytes(n);
        let meta = store.put_snapshot(id, &data).await.unwrap();
        let expected: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(meta.sha256, expected);
        assert_eq!(meta.sha256_hex().len(), 64);
        assert_eq!(meta.size_bytes, data.len() as u64);
        assert_eq!(&meta.session_id, id);

        let (latest, bytes) = store.latest_snapshot(id).await.unwrap().unwrap();
        assert_eq!(latest, meta);
        assert_eq!(bytes, data);
        metas.push(meta);
    }
    assert!(metas.windows(2).all(|w| w[0].id < w[1].id));

    // Only the newest three are kept, newest first; the other session's is untouched.
    let kept = store.list_snapshots(id).await.unwrap();
    let expected: Vec<_> = metas[2..].iter().rev().cloned().collect();
    assert_eq!(kept, expected);
    assert_eq!(db.snapshot_rows(id).await, KEEP_SNAPSHOTS);
    assert_eq!(
        store.list_snapshots(&other.id).await.unwrap(),
        vec![other_meta]
    );

    // An empty snapshot is a snapshot too.
    let empty = store.put_snapshot(id, b"").await.unwrap();
    assert_eq!(empty.size_bytes, 0);
    assert_eq!(
        store.latest_snapshot(id).await.unwrap(),
        Some((empty, Vec::new()))
    );
}

async fn failed_snapshot_leaves_no_row(db: &TestDb) {
    let store = &db.store;
    let session = store.create_session(new_session("ada")).await.unwrap();
    let id = &session.id;
    let good = tar_bytes(1);
    let good_meta = store.put_snapshot(id, &good).await.unwrap();

    // Too large: refused before any write.
    let small = store.clone().with_max_snapshot_bytes(100);
    assert!(matches!(
        small.put_snapshot(id, &tar_bytes(2)).await,
        Err(StoreError::SnapshotTooLarge { limit: 100, .. })
    ));

    // Fails inside the transaction, after the row was inserted: rolled back, nothing visible,
    // and the previous snapshot is neither replaced nor pruned.
    store
        .faults
        .fail_before_snapshot_complete
        .store(true, Ordering::SeqCst);
    for n in 3..7 {
        assert!(matches!(
            store.put_snapshot(id, &tar_bytes(n)).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
    store
        .faults
        .fail_before_snapshot_complete
        .store(false, Ordering::SeqCst);
    assert_eq!(db.snapshot_rows(id).await, 1);
    assert_eq!(
        store.latest_snapshot(id).await.unwrap(),
        Some((good_meta.clone(), good.clone()))
    );

    // Refused by the database: a session that does not exist, or was deleted.
    let unknown = new_session_id().unwrap();
    assert!(matches!(
        store.put_snapshot(&unknown, &good).await,
        Err(StoreError::SessionNotFound(_))
    ));
    assert_eq!(db.snapshot_rows(&unknown).await, 0);

    // A constraint violated mid-transaction (the stored size disagrees with the data) rolls the
    // whole insert back as well.
    let violated = on_pool!(store, pool => {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO snapshots (session_id, created_at, size_bytes, sha256, data, complete) \
             VALUES ($1, $2, $3, $4, $5, FALSE)",
        )
        .bind(id.as_str())
        .bind(T0.as_unix_millis())
        .bind(3_i64)
        .bind(hex(&[0; 32]))
        .bind(&b"abc"[..])
        .execute(&mut *tx)
        .await
        .unwrap();
        let violated = sqlx::query(
            "INSERT INTO snapshots (session_id, created_at, size_bytes, sha256, data, complete) \
             VALUES ($1, $2, $3, $4, $5, FALSE)",
        )
        .bind(id.as_str())
        .bind(T0.as_unix_millis())
        .bind(4_i64)
        .bind(hex(&[0; 32]))
        .bind(&b"abc"[..])
        .execute(&mut *tx)
        .await;
        drop(tx);
        violated.map(|_| ())
    });
    assert!(
        matches!(&violated, Err(sqlx::Error::Database(e)) if e.is_check_violation()),
        "{violated:?}"
    );
    assert_eq!(db.snapshot_rows(id).await, 1);
    assert_eq!(
        store.latest_snapshot(id).await.unwrap(),
        Some((good_meta, good))
    );

    // And the store still works normally afterwards.
    let next = store.put_snapshot(id, &tar_bytes(8)).await.unwrap();
    assert_eq!(store.latest_snapshot(id).await.unwrap().unwrap().0, next);
}

async fn incomplete_or_corrupt_snapshots_are_never_returned(db: &TestDb) {
    let store = &db.store;
    let session = store.create_session(new_session("ada")).await.unwrap();
    let id = &session.id;
    let good = tar_bytes(1);
    let good_meta = store.put_snapshot(id, &good).await.unwrap();

    // A newer row that was never marked complete (as a crash mid-write would leave, were the
    // write not one transaction) is ignored by readers and removed by the next prune.
    let partial = tar_bytes(2);
    on_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO snapshots (session_id, created_at, size_bytes, sha256, data, complete) \
             VALUES ($1, $2, $3, $4, $5, FALSE)",
        )
        .bind(id.as_str())
        .bind(T0.as_unix_millis())
        .bind(i64::try_from(partial.len()).unwrap())
        .bind(hex(&Sha256::digest(&partial)))
        .bind(partial.as_slice())
        .execute(pool)
        .await
        .unwrap();
    });
    assert_eq!(db.snapshot_rows(id).await, 2);
    assert_eq!(
        store.latest_snapshot(id).await.unwrap(),
        Some((good_meta.clone(), good.clone()))
    );
    assert_eq!(store.list_snapshots(id).await.unwrap(), vec![good_meta]);

    let newer = tar_bytes(3);
    let newer_meta = store.put_snapshot(id, &newer).await.unwrap();
    assert_eq!(
        db.snapshot_rows(id).await,
        2,
        "the incomplete row is pruned"
    );

    // Bytes changed behind the store's back (same length, so the size check passes): the
    // checksum catches it instead of restoring a damaged workspace.
    let mut damaged = newer.clone();
    damaged[10] ^= 0xff;
    on_pool!(store, pool => {
        sqlx::query("UPDATE snapshots SET data = $2 WHERE id = $1")
            .bind(newer_meta.id)
            .bind(damaged.as_slice())
            .execute(pool)
            .await
            .unwrap();
    });
    assert!(matches!(
        store.latest_snapshot(id).await,
        Err(StoreError::SnapshotCorrupt { id: bad, .. }) if bad == newer_meta.id
    ));
}

async fn audit_events_newest_first(db: &TestDb) {
    let store = &db.store;
    let session = store.create_session(new_session("ada")).await.unwrap();
    let other = store.create_session(new_session("grace")).await.unwrap();
    let event = |session_id: Option<&SessionId>, millis, action: &str| AuditEvent {
        session_id: session_id.cloned(),
        at: later(T0, millis),
        actor: "u-ada".to_owned(),
        action: action.to_owned(),
        detail: json!({ "action": action, "nested": { "n": millis, "s": "ü \"quoted\"" } }),
    };

    let created = event(Some(&session.id), 0, "session.create");
    let invited = event(Some(&session.id), 2_000, "participant.invite");
    // Recorded after `invited` but happened before it: ordered by time, not insertion.
    let port = event(Some(&session.id), 1_000, "port.public");
    // Same time as `invited`, recorded later: the later record comes first.
    let hibernated = event(Some(&session.id), 2_000, "session.hibernate");
    let mut ids = Vec::new();
    for e in [&created, &invited, &port, &hibernated] {
        ids.push(store.audit(e).await.unwrap());
    }
    store
        .audit(&event(Some(&other.id), 5_000, "session.create"))
        .await
        .unwrap();
    store
        .audit(&event(None, 6_000, "session.refused"))
        .await
        .unwrap();

    let recent = store.recent_audit(&session.id, 10).await.unwrap();
    let actions: Vec<_> = recent.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "session.hibernate",
            "participant.invite",
            "port.public",
            "session.create"
        ]
    );
    assert_eq!(recent[0].id, ids[3]);
    assert_eq!(recent[0].event, hibernated);
    assert_eq!(recent[3].event, created);

    let two = store.recent_audit(&session.id, 2).await.unwrap();
    assert_eq!(two, recent[..2].to_vec());
    assert!(store.recent_audit(&session.id, 0).await.unwrap().is_empty());
    assert_eq!(store.recent_audit(&other.id, 10).await.unwrap().len(), 1);
}

async fn ports_and_visibility(db: &TestDb) {
    use super::{SessionPort, Visibility};
    let session = db.store.create_session(new_session("ada")).await.unwrap();
    assert_eq!(db.store.ports(&session.id).await.unwrap(), vec![]);
    let declared = vec![
        SessionPort {
            port: 3000,
            visibility: Visibility::Private,
        },
        SessionPort {
            port: 8080,
            visibility: Visibility::Public,
        },
    ];
    // Stored out of order, read back lowest first.
    let mut reversed = declared.clone();
    reversed.reverse();
    db.store.set_ports(&session.id, &reversed).await.unwrap();
    assert_eq!(db.store.ports(&session.id).await.unwrap(), declared);

    db.store
        .set_port_visibility(&session.id, 3000, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        db.store.ports(&session.id).await.unwrap()[0].visibility,
        Visibility::Public
    );
    // An undeclared port is not created by a visibility change.
    let missing = db
        .store
        .set_port_visibility(&session.id, 22, Visibility::Public)
        .await;
    assert!(
        matches!(missing, Err(StoreError::PortNotFound(_, 22))),
        "{missing:?}"
    );
    assert_eq!(db.store.ports(&session.id).await.unwrap().len(), 2);

    // Replacing the set drops ports that are no longer declared.
    db.store
        .set_ports(&session.id, &declared[..1])
        .await
        .unwrap();
    assert_eq!(db.store.ports(&session.id).await.unwrap().len(), 1);
}

async fn an_unreadable_row_does_not_hide_the_others(db: &TestDb) {
    let store = &db.store;
    let good = store.create_session(new_session("ada")).await.unwrap();
    // An id in a format this version no longer reads (ids used to be able to start with a
    // digit), as an older gateway could have stored it.
    on_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO sessions (id, namespace, owner_name, state, created_at, last_activity_at, \
             idle_timeout_seconds) VALUES ($1, 'huddle-test', 'old', 'running', $2, $2, 900)",
        )
        .bind("42h26jxqubxe7e6erblkdccbka")
        .bind(T0.as_unix_millis())
        .execute(pool)
        .await
        .unwrap();
    });
    let listed: Vec<SessionId> = store
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![good.id]);
}
