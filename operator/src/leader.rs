//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! only one reconciles at a time.
//!
//! kube-rs has no elector, so this is a small one following client-go's protocol. The Lease
//! names its holder and when the holder last renewed it; another replica may take it over only
//! once `renewTime + leaseDurationSeconds` has passed. Every write is a `replace` carrying the
//! `resourceVersion` that was read, so when two replicas race for the same Lease the API server
//! accepts one write and answers the other with 409 Conflict: optimistic concurrency, never a
//! blind patch.
//!
//! A leader gives up *before* others may take over: it considers leadership lost when no
//! renewal has succeeded for `lease_duration - renew_every` (10 s by default, client-go's
//! `renewDeadline`), measured on its monotonic clock from the moment it sent the renewal that
//! last succeeded. The remaining `renew_every` (5 s) is the margin for clock skew between
//! replicas, since others judge expiry by the wall-clock `renewTime` written in the Lease.
//!
//! Identities must be unique per process (the pod name is the usual choice): a replica that
//! finds its own identity in the Lease treats the Lease as already its own.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How long a Lease lasts and how often it is renewed and retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long others must wait after the last renewal before they may take the Lease over.
    pub lease_duration: Duration,
    /// How often the leader renews the Lease. Must be shorter than `lease_duration`.
    pub renew_every: Duration,
    /// How often a candidate checks the Lease, and how soon a failed renewal is retried.
    pub retry_every: Duration,
}

impl Default for LeaseTiming {
    /// client-go's defaults: a 15 s lease, renewed every 5 s, retried every 2 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    fn validate(&self) -> Result<(), LeaderError> {
        if self.renew_every.is_zero() || self.retry_every.is_zero() {
            return Err(LeaderError::InvalidTiming(
                "renew_every and retry_every must be positive",
            ));
        }
        if self.renew_every >= self.lease_duration {
            return Err(LeaderError::InvalidTiming(
                "renew_every must be shorter than lease_duration",
            ));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err() {
            return Err(LeaderError::InvalidTiming(
                "lease_duration does not fit leaseDurationSeconds",
            ));
        }
        Ok(())
    }

    /// How long a leader keeps leading without a successful renewal.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_every)
    }

    /// `lease_duration` in whole seconds for the Lease, rounded up so others never wait less.
    fn lease_duration_seconds(&self) -> i32 {
        let whole = self.lease_duration.as_secs();
        let rounded = whole.saturating_add(u64::from(self.lease_duration.subsec_nanos() > 0));
        i32::try_from(rounded).unwrap_or(i32::MAX).max(1)
    }
}

/// Why leader election could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid lease timing: {0}")]
    InvalidTiming(&'static str),
    #[error("request on the leader Lease failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("Lease {0} has no resourceVersion; refusing an unconditional write")]
    NoResourceVersion(String),
}

impl LeaderError {
    /// Errors that retrying will not cure: missing RBAC, an invalid Lease, a bad configuration.
    fn is_fatal(&self) -> bool {
        match self {
            Self::InvalidTiming(_) | Self::NoResourceVersion(_) => true,
            Self::Kube(kube::Error::Api(status)) => matches!(status.code, 400 | 401 | 403 | 422),
            Self::Kube(_) => false,
        }
    }
}

/// What a candidate may do with a Lease it has just read.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// The Lease is already ours: renew it, keeping `acquireTime` and `leaseTransitions`.
    Renew,
    /// Nobody holds the Lease, or its holder let it expire: take it over.
    TakeOver,
    /// Someone else holds a live Lease.
    Held {
        holder: String,
        /// Time left until the holder's Lease expires, if it is not renewed.
        expires_in: SignedDuration,
    },
}

/// Decides what `identity` may do with `lease` at wall-clock time `now`.
///
/// A missing `renewTime` falls back to `acquireTime`; a Lease naming a holder but carrying
/// neither proves nothing about that holder being alive and counts as expired. A missing
/// `leaseDurationSeconds` counts as our own lease duration.
fn claim(lease: &Lease, identity: &str, now: Timestamp, timing: &LeaseTiming) -> Claim {
    let Some(spec) = lease.spec.as_ref() else {
        return Claim::TakeOver;
    };
    let holder = match spec.holder_identity.as_deref() {
        None | Some("") => return Claim::TakeOver,
        Some(holder) if holder == identity => return Claim::Renew,
        Some(holder) => holder,
    };
    let Some(MicroTime(renewed_at)) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())
    else {
        return Claim::TakeOver;
    };
    let duration_seconds = spec
        .lease_duration_seconds
        .unwrap_or_else(|| timing.lease_duration_seconds())
        .max(0);
    let expires_in =
        match renewed_at.checked_add(SignedDuration::from_secs(duration_seconds.into())) {
            Ok(expires_at) => expires_at.duration_since(now),
            // Beyond the representable range: it never expires in practice.
            Err(_) => SignedDuration::MAX,
        };
    if expires_in.is_negative() {
        Claim::TakeOver
    } else {
        Claim::Held {
            holder: holder.to_owned(),
            expires_in,
        }
    }
}

/// A new Lease held by `identity`.
fn created(name: &str, identity: &str, now: Timestamp, timing: &LeaseTiming) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            lease_duration_seconds: Some(timing.lease_duration_seconds()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

/// `lease`, renewed by its current holder.
fn renewed(mut lease: Lease, now: Timestamp, timing: &LeaseTiming) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(timing.lease_duration_seconds());
    lease
}

/// `lease`, taken over by `identity` from a previous holder (or from nobody).
fn taken_over(mut lease: Lease, identity: &str, now: Timestamp, timing: &LeaseTiming) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(identity.to_owned());
    spec.acquire_time = Some(MicroTime(now));
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(timing.lease_duration_seconds());
    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    lease
}

/// `lease`, given up by its holder so that the next candidate need not wait for it to expire.
fn released(mut lease: Lease, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(now));
    lease
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

fn is_conflict(error: &kube::Error) -> bool {
    // A create that loses answers 409 AlreadyExists, a stale replace 409 Conflict.
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The outcome of one attempt to become leader.
enum Attempt {
    Acquired,
    Held {
        holder: String,
        expires_in: SignedDuration,
    },
    /// Another candidate wrote the Lease between our read and our write.
    LostRace,
}

/// The outcome of one attempt to renew.
enum Renewal {
    Renewed,
    /// Someone else holds the Lease now (an empty holder means it was released).
    TakenBy(String),
    Deleted,
    /// The Lease changed between our read and our write; read it again.
    Conflict,
}

/// Competes for one Lease under one identity.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    timing: LeaseTiming,
}

impl LeaderElector {
    /// An elector for the Lease `namespace/lease_name`. `identity` must be unique among the
    /// replicas (the pod name, say). Nothing is contacted until [`LeaderElector::acquire`].
    pub fn new(
        client: kube::Client,
        namespace: &str,
        lease_name: &str,
        identity: String,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            lease_name: lease_name.to_owned(),
            identity,
            timing,
        }
    }

    /// Waits until this replica holds the Lease, then keeps renewing it in the background.
    ///
    /// Transient failures (network, conflicts, server errors) are logged and retried every
    /// `retry_every`; only errors that retrying cannot cure (bad timing, missing RBAC, an
    /// invalid Lease) are returned.
    pub async fn acquire(&self) -> Result<Leadership, LeaderError> {
        self.timing.validate()?;
        let mut last_seen_holder: Option<String> = None;
        loop {
            // The Lease we write says we renewed at the start of this attempt, so our own
            // renew deadline counts from here too.
            let attempt_started = Instant::now();
            match self.try_acquire().await {
                Ok(Attempt::Acquired) => {
                    info!(
                        lease = %self.lease_name,
                        identity = %self.identity,
                        "acquired the leader lease"
                    );
                    return Ok(Leadership::start(self.clone(), attempt_started));
                }
                Ok(Attempt::Held { holder, expires_in }) => {
                    let expires_in_seconds = expires_in.as_secs();
                    if last_seen_holder.as_deref() == Some(holder.as_str()) {
                        debug!(lease = %self.lease_name, %holder, expires_in_seconds, "waiting for the leader lease");
                    } else {
                        info!(lease = %self.lease_name, %holder, expires_in_seconds, "another replica leads; waiting for the leader lease");
                        last_seen_holder = Some(holder);
                    }
                }
                Ok(Attempt::LostRace) => {
                    debug!(lease = %self.lease_name, "another candidate wrote the leader lease first");
                }
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) => {
                    warn!(lease = %self.lease_name, %error, "could not acquire the leader lease; retrying");
                }
            }
            tokio::time::sleep(self.timing.retry_every).await;
        }
    }

    async fn try_acquire(&self) -> Result<Attempt, LeaderError> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.lease_name).await? else {
            let lease = created(&self.lease_name, &self.identity, now, &self.timing);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Acquired),
                Err(error) if is_conflict(&error) => Ok(Attempt::LostRace),
                Err(error) => Err(error.into()),
            };
        };
        let lease = match claim(&lease, &self.identity, now, &self.timing) {
            Claim::Held { holder, expires_in } => {
                return Ok(Attempt::Held { holder, expires_in });
            }
            Claim::Renew => renewed(lease, now, &self.timing),
            Claim::TakeOver => taken_over(lease, &self.identity, now, &self.timing),
        };
        match self.replace(&lease).await {
            Ok(()) => Ok(Attempt::Acquired),
            Err(LeaderError::Kube(error)) if is_conflict(&error) => Ok(Attempt::LostRace),
            Err(error) => Err(error),
        }
    }

    async fn try_renew(&self) -> Result<Renewal, LeaderError> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.lease_name).await? else {
            return Ok(Renewal::Deleted);
        };
        if holder(&lease) != Some(self.identity.as_str()) {
            return Ok(Renewal::TakenBy(
                holder(&lease).unwrap_or_default().to_owned(),
            ));
        }
        match self.replace(&renewed(lease, now, &self.timing)).await {
            Ok(()) => Ok(Renewal::Renewed),
            Err(LeaderError::Kube(error)) if is_conflict(&error) => Ok(Renewal::Conflict),
            Err(error) => Err(error),
        }
    }

    /// Renews until the Lease is lost, and says why it was lost.
    async fn keep_renewing(&self, mut last_renewed: Instant) -> String {
        let mut next_attempt = last_renewed + self.timing.renew_every;
        loop {
            tokio::time::sleep_until(next_attempt).await;
            let deadline = last_renewed + self.timing.renew_deadline();
            let attempt_started = Instant::now();
            let outcome = match tokio::time::timeout_at(deadline, self.try_renew()).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => {
                    return format!(
                        "no renewal succeeded within {:?}",
                        self.timing.renew_deadline()
                    );
                }
            };
            match outcome {
                Ok(Renewal::Renewed) => {
                    debug!(lease = %self.lease_name, "renewed the leader lease");
                    last_renewed = attempt_started;
                    next_attempt = attempt_started + self.timing.renew_every;
                    continue;
                }
                Ok(Renewal::TakenBy(holder)) if holder.is_empty() => {
                    return "the lease was released by someone else".to_owned();
                }
                Ok(Renewal::TakenBy(holder)) => return format!("{holder} holds the lease now"),
                Ok(Renewal::Deleted) => return "the lease was deleted".to_owned(),
                Ok(Renewal::Conflict) => {
                    debug!(lease = %self.lease_name, "the leader lease changed while renewing; retrying");
                }
                Err(error) => {
                    warn!(lease = %self.lease_name, %error, "could not renew the leader lease; retrying");
                }
            }
            next_attempt = Instant::now() + self.timing.retry_every;
        }
    }

    /// Gives the Lease up if it is still ours. Returns whether it needs another try.
    async fn try_release(&self) -> Result<bool, LeaderError> {
        let Some(lease) = self.api.get_opt(&self.lease_name).await? else {
            return Ok(false);
        };
        if holder(&lease) != Some(self.identity.as_str()) {
            return Ok(false);
        }
        match self.replace(&released(lease, Timestamp::now())).await {
            Ok(()) => {
                info!(lease = %self.lease_name, "released the leader lease");
                Ok(false)
            }
            Err(LeaderError::Kube(error)) if is_conflict(&error) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// Writes `lease` only if it is still at the `resourceVersion` it was read at.
    async fn replace(&self, lease: &Lease) -> Result<(), LeaderError> {
        if lease.metadata.resource_version.is_none() {
            return Err(LeaderError::NoResourceVersion(self.lease_name.clone()));
        }
        self.api
            .replace(&self.lease_name, &PostParams::default(), lease)
            .await?;
        Ok(())
    }
}

/// Held leadership. A background task renews the Lease until it is lost, the value is dropped
/// (which just stops renewing; the Lease then expires), or [`Leadership::release`] is called.
pub struct Leadership {
    elector: LeaderElector,
    lost: watch::Receiver<bool>,
    /// Dropping this stops the renewer.
    stop_renewing: oneshot::Sender<()>,
    renewer: JoinHandle<()>,
}

impl Leadership {
    fn start(elector: LeaderElector, last_renewed: Instant) -> Self {
        let (lost_tx, lost) = watch::channel(false);
        let (stop_renewing, stopped) = oneshot::channel::<()>();
        let renewing = elector.clone();
        let renewer = tokio::spawn(async move {
            tokio::select! {
                // Released or dropped: stop quietly.
                _ = stopped => {}
                reason = renewing.keep_renewing(last_renewed) => {
                    warn!(lease = %renewing.lease_name, %reason, "lost the leader lease");
                    lost_tx.send_replace(true);
                }
            }
        });
        Self {
            elector,
            lost,
            stop_renewing,
            renewer,
        }
    }

    /// Resolves once leadership is lost: the Lease was taken, deleted, or could not be renewed
    /// in time. Stop reconciling at once when it does. Cancel-safe, so it can sit in a
    /// `tokio::select!`.
    pub async fn lost(&mut self) {
        // An error means the renewer is gone without saying why (it panicked): not leading.
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and hands the Lease back, so another replica takes over at once instead
    /// of waiting for it to expire. Call it on graceful shutdown, after reconciling stopped.
    pub async fn release(self) {
        let Self {
            elector,
            lost: _,
            stop_renewing,
            renewer,
        } = self;
        drop(stop_renewing);
        // Wait for the renewer so that no renewal of ours lands after the release.
        if let Err(error) = renewer.await {
            warn!(%error, "the leader lease renewer failed");
        }
        // A renewal cancelled in flight may still land and make our first release conflict.
        for _ in 0..3 {
            match elector.try_release().await {
                Ok(true) => continue,
                Ok(false) => return,
                Err(error) => {
                    warn!(lease = %elector.lease_name, %error, "could not release the leader lease; it will expire");
                    return;
                }
            }
        }
        warn!(lease = %elector.lease_name, "the leader lease kept changing; it will expire instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "operator-a";
    const OTHER: &str = "operator-b";

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn lease(holder: Option<&str>, renewed_at: Option<i64>, duration: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("huddle-operator".to_owned()),
                resource_version: Some("42".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: renewed_at.map(|second| MicroTime(at(second))),
                acquire_time: Some(MicroTime(at(-100))),
                lease_duration_seconds: duration,
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    fn timing() -> LeaseTiming {
        LeaseTiming::default()
    }

    fn claim_at(lease: &Lease, identity: &str, second: i64) -> Claim {
        claim(lease, identity, at(second), &timing())
    }

    #[test]
    fn a_lease_without_holder_is_free() {
        for empty in [None, Some("")] {
            let lease = lease(empty, Some(-1), Some(15));
            assert_eq!(claim_at(&lease, ME, 0), Claim::TakeOver);
        }
        let no_spec = Lease {
            spec: None,
            ..lease(None, None, None)
        };
        assert_eq!(claim_at(&no_spec, ME, 0), Claim::TakeOver);
    }

    #[test]
    fn our_own_lease_is_renewed_even_when_expired() {
        assert_eq!(
            claim_at(&lease(Some(ME), Some(-1), Some(15)), ME, 0),
            Claim::Renew
        );
        assert_eq!(
            claim_at(&lease(Some(ME), Some(-60), Some(15)), ME, 0),
            Claim::Renew
        );
    }

    #[test]
    fn someone_elses_fresh_lease_is_waited_for() {
        assert_eq!(
            claim_at(&lease(Some(OTHER), Some(-5), Some(15)), ME, 0),
            Claim::Held {
                holder: OTHER.to_owned(),
                expires_in: SignedDuration::from_secs(10),
            }
        );
        // Exactly at renewTime + leaseDurationSeconds it is still valid.
        assert!(matches!(
            claim_at(&lease(Some(OTHER), Some(-15), Some(15)), ME, 0),
            Claim::Held { .. }
        ));
    }

    #[test]
    fn someone_elses_expired_lease_is_taken_over() {
        assert_eq!(
            claim_at(&lease(Some(OTHER), Some(-16), Some(15)), ME, 0),
            Claim::TakeOver
        );
        // A released lease (duration 1) is free a second later.
        assert_eq!(
            claim_at(&lease(Some(OTHER), Some(-2), Some(1)), ME, 0),
            Claim::TakeOver
        );
    }

    #[test]
    fn missing_renew_time_falls_back_to_acquire_time() {
        // acquireTime is 100 s ago: long expired.
        assert_eq!(
            claim_at(&lease(Some(OTHER), None, Some(15)), ME, 0),
            Claim::TakeOver
        );
        // acquireTime 100 s ago, but now is 90 s later than that: still held.
        assert!(matches!(
            claim_at(&lease(Some(OTHER), None, Some(15)), ME, -90),
            Claim::Held { .. }
        ));
        // Neither time: nothing shows the holder is alive.
        let mut bare = lease(Some(OTHER), None, Some(15));
        if let Some(spec) = bare.spec.as_mut() {
            spec.acquire_time = None;
        }
        assert_eq!(claim_at(&bare, ME, 0), Claim::TakeOver);
    }

    #[test]
    fn missing_duration_counts_as_ours() {
        let lease = lease(Some(OTHER), Some(-10), None);
        assert!(matches!(claim_at(&lease, ME, 0), Claim::Held { .. }));
        assert_eq!(claim_at(&lease, ME, 6), Claim::TakeOver);
    }

    #[test]
    fn takeover_counts_a_transition_and_keeps_the_resource_version() {
        let now = at(0);
        let taken = taken_over(lease(Some(OTHER), Some(-60), Some(30)), ME, now, &timing());
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("42"));
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn renewal_moves_only_renew_time() {
        let now = at(0);
        let renewed = renewed(lease(Some(ME), Some(-5), Some(15)), now, &timing());
        assert_eq!(renewed.metadata.resource_version.as_deref(), Some("42"));
        let spec = renewed.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(-100))));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn a_new_lease_is_ours_with_no_transitions() {
        let lease = created("huddle-operator", ME, at(0), &timing());
        assert_eq!(lease.metadata.name.as_deref(), Some("huddle-operator"));
        assert_eq!(claim_at(&lease, ME, 0), Claim::Renew);
        assert_eq!(lease.spec.unwrap().lease_transitions, Some(0));
    }

    #[test]
    fn a_released_lease_is_free_for_the_next_candidate() {
        let released = released(lease(Some(ME), Some(-1), Some(15)), at(0));
        assert_eq!(holder(&released), None);
        assert_eq!(claim_at(&released, OTHER, 0), Claim::TakeOver);
        assert_eq!(released.spec.unwrap().lease_transitions, Some(3));
    }

    #[test]
    fn timing_is_checked_and_rounded_up_to_whole_seconds() {
        assert!(timing().validate().is_ok());
        assert_eq!(timing().renew_deadline(), Duration::from_secs(10));
        assert_eq!(timing().lease_duration_seconds(), 15);
        let fractional = LeaseTiming {
            lease_duration: Duration::from_millis(1500),
            renew_every: Duration::from_millis(500),
            retry_every: Duration::from_millis(200),
        };
        assert!(fractional.validate().is_ok());
        assert_eq!(fractional.lease_duration_seconds(), 2);
        let renew_too_slow = LeaseTiming {
            renew_every: Duration::from_secs(15),
            ..timing()
        };
        assert!(renew_too_slow.validate().is_err());
        let no_retry = LeaseTiming {
            retry_every: Duration::ZERO,
            ..timing()
        };
        assert!(no_retry.validate().is_err());
    }
}
