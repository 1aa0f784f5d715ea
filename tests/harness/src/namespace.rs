//! A namespace per test, so tests sharing one cluster never see each other's objects.

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wait::wait_for_object_gone;

/// A namespace created for one test. Call [`TestNamespace::delete`] at the end of the test;
/// on a panic the namespace stays behind for inspection and goes with the cluster teardown.
pub struct TestNamespace {
    client: kube::Client,
    name: String,
}

impl TestNamespace {
    /// Creates a namespace named `<prefix>-<unique suffix>`.
    pub async fn create(client: &kube::Client, prefix: &str) -> Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let name = format!("{prefix}-{:x}", nanos % 0xffff_ffff);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("huddle.dev/test".to_owned(), prefix.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(Self {
            client: client.clone(),
            name,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace and waits until the namespace controller has removed everything
    /// in it.
    pub async fn delete(self) -> Result<()> {
        let api = Api::<Namespace>::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting namespace {}", self.name))?;
        wait_for_object_gone(&api, &self.name, Duration::from_secs(120)).await
    }
}
