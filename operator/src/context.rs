//! What every reconcile shares: the client, the configuration, the Events recorder, metrics,
//! each object's error count for back-off, and the phase changes recorded but not yet seen.

use huddle_crds::names;
use huddle_crds::session::{Session, SessionPhase};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::Metrics;

pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub recorder: Recorder,
    pub metrics: Metrics,
    failures: Mutex<HashMap<ObjectRef<Session>, u32>>,
    /// The phase each Session was last moved to, until the watch cache shows it. A reconcile
    /// can read a Session from before its own previous status write; without this it would
    /// record the same change (an Event, the time-to-Ready) twice.
    transitions: Mutex<HashMap<ObjectRef<Session>, SessionPhase>>,
}

/// First retry after an error; doubles per consecutive error up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(
        client: kube::Client,
        config: Config,
        metrics: Metrics,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: names::OPERATOR_NAME.to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            failures: Mutex::new(HashMap::new()),
            transitions: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `object`'s change from the cached phase to `phase` is new and must be recorded
    /// (an Event, metrics); it is then remembered until the cache catches up.
    pub fn first_time_moving(
        &self,
        object: ObjectRef<Session>,
        cached: Option<SessionPhase>,
        phase: SessionPhase,
    ) -> bool {
        first_time_moving(&self.transitions, object, cached, phase)
    }

    /// Records one more consecutive failure for `object` and returns how long to wait.
    pub fn backoff(&self, object: ObjectRef<Session>) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(object).or_insert(0);
        *count = count.saturating_add(1);
        backoff_for(*count)
    }

    /// Forgets `object`'s failures after a successful reconcile.
    pub fn succeeded(&self, object: &ObjectRef<Session>) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(object);
    }
}

fn first_time_moving(
    transitions: &Mutex<HashMap<ObjectRef<Session>, SessionPhase>>,
    object: ObjectRef<Session>,
    cached: Option<SessionPhase>,
    phase: SessionPhase,
) -> bool {
    let mut transitions = transitions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cached == Some(phase) {
        transitions.remove(&object);
        return false;
    }
    if transitions.get(&object) == Some(&phase) {
        return false;
    }
    transitions.insert(object, phase);
    true
}

fn backoff_for(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_change_is_recorded_once_even_when_the_cache_lags() {
        let transitions = Mutex::new(HashMap::new());
        let moving = |name: &str, cached, phase| {
            first_time_moving(
                &transitions,
                ObjectRef::new(name).within("huddle"),
                Some(cached),
                phase,
            )
        };
        let (starting, running) = (SessionPhase::Starting, SessionPhase::Running);
        assert!(moving("s1", starting, running));
        // The next reconcile still reads Starting from the cache: already recorded.
        assert!(!moving("s1", starting, running));
        // Another session is its own.
        assert!(moving("s2", starting, running));
        // The cache caught up: nothing to record, and s1 is forgotten.
        assert!(!moving("s1", running, running));
        assert_eq!(transitions.lock().map(|t| t.len()).unwrap_or(0), 1);
        // A later change is recorded again.
        assert!(moving("s1", running, SessionPhase::Hibernated));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_for(1), Duration::from_millis(500));
        assert_eq!(backoff_for(2), Duration::from_secs(1));
        assert_eq!(backoff_for(4), Duration::from_secs(4));
        assert_eq!(backoff_for(30), MAX_BACKOFF);
    }
}
