//! Where the running test cluster is: read from the environment `cluster.sh` writes.

use anyhow::{Context as _, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// The test cluster and stores the current test run can reach.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// Admin kubeconfig of the test cluster.
    pub kubeconfig: PathBuf,
    /// Name of the cluster's only node.
    pub node_name: String,
    /// `postgres://` URL of a throwaway database.
    pub database_url: String,
    /// `redis://` URL of a throwaway Redis.
    pub redis_url: String,
    /// The workspace agent image, already imported into the node's containerd.
    pub agent_image: String,
}

impl TestEnv {
    /// Reads the environment `tests/cluster/cluster.sh exec` provides. Fails with a message that
    /// says how to run the tests when it is missing, rather than skipping: a test that silently
    /// does not run proves nothing.
    pub fn from_env() -> Result<Self> {
        let var = Self::var;
        Ok(Self {
            kubeconfig: PathBuf::from(var("KUBECONFIG")?),
            node_name: var("HUDDLE_TEST_NODE_NAME")?,
            database_url: var("HUDDLE_TEST_DATABASE_URL")?,
            redis_url: var("HUDDLE_TEST_REDIS_URL")?,
            agent_image: var("HUDDLE_TEST_AGENT_IMAGE")?,
        })
    }

    /// One more variable of the environment `cluster.sh` writes (see `tests/cluster/cluster.sh`
    /// `write_env`), failing like [`TestEnv::from_env`] when it is missing.
    pub fn var(name: &str) -> Result<String> {
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(value),
            _ => bail!(
                "{name} is not set: end-to-end tests run inside the test cluster; use \
                 `scripts/test`, or `tests/cluster/cluster.sh up` then \
                 `tests/cluster/cluster.sh exec -- cargo test`"
            ),
        }
    }

    /// A Kubernetes client authenticated as the cluster admin.
    pub async fn kube_client(&self) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .context("loading the test cluster's kubeconfig")?;
        kube::Client::try_from(config).context("building a Kubernetes client")
    }

    /// An HTTP client for talking to pods directly. Proxy variables from the outer environment
    /// are ignored: pod addresses exist only inside the cluster's network namespace.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building an HTTP client")
    }
}
