//! What every reconcile shares: the client, the configuration, the Events recorder, metrics,
//! and each object's error count for back-off.

use huddle_crds::names;
use huddle_crds::session::Session;
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
        }
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

fn backoff_for(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_for(1), Duration::from_millis(500));
        assert_eq!(backoff_for(2), Duration::from_secs(1));
        assert_eq!(backoff_for(4), Duration::from_secs(4));
        assert_eq!(backoff_for(30), MAX_BACKOFF);
    }
}
