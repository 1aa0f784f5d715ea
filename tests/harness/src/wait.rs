//! Waiting for the cluster to reach a state, with a deadline and a useful failure message.

use anyhow::{Result, bail};
use kube::api::Api;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Calls `check` every 200 ms until it returns `Some`, or fails after `timeout` naming `what`
/// and the last thing `check` reported.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(error) => bail!("timed out after {timeout:?} waiting for {what}: {error:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the object `name` no longer exists (finalizers and graceful deletion done),
/// watching rather than polling so the test sees the removal as soon as the API server does.
pub async fn wait_for_object_gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let uid = match api.get_opt(name).await? {
        Some(object) => object.uid().unwrap_or_default(),
        None => return Ok(()),
    };
    let gone = await_condition(api.clone(), name, conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, gone).await {
        Ok(result) => {
            result?;
            Ok(())
        }
        Err(_) => bail!(
            "timed out after {timeout:?} waiting for {} {name} to be deleted",
            K::kind(&Default::default())
        ),
    }
}
