//! Time from creating a Session to its Ready condition, on the real test cluster, for 1 and for
//! 20 sessions created at once, split into operator time (Session created → its pod exists)
//! and pod start time (pod exists → pod Ready), plus the operator's status write (pod Ready →
//! Session Running).
//!
//! Baseline, in the same process and cluster: the same pod created directly, without a
//! Session or the operator. The ratio says what the operator adds on top of Kubernetes.
//!
//! Run inside the test cluster:
//!   tests/cluster/cluster.sh up
//!   tests/cluster/cluster.sh exec -- cargo bench -p huddle-e2e --bench session_startup

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use huddle_crds::session::{Session, SessionPhase};
use huddle_test_harness::{Process, TestEnv, TestNamespace, free_local_addr, install_crd};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// When each milestone of one object was first seen by this process.
#[derive(Default, Clone, Copy)]
struct Seen {
    pod_created: Option<Instant>,
    pod_ready: Option<Instant>,
    session_running: Option<Instant>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let env = TestEnv::from_env()?;
    let client = env.kube_client().await?;
    install_crd(&client).await?;

    println!("session start-up on the test cluster (1 node, 2 cores)\n");
    for count in [1usize, 20] {
        let baseline = bare_pods(&env, &client, count).await?;
        let sessions = sessions(&env, &client, count).await?;
        report(count, &baseline, &sessions);
    }
    Ok(())
}

/// Creates `count` pods directly, returns create→Ready per pod.
async fn bare_pods(env: &TestEnv, client: &Client, count: usize) -> Result<Vec<Duration>> {
    let namespace = TestNamespace::create(client, "bench-pods").await?;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace.name());
    let watch = spawn_pod_watch(pods.clone());
    let start = Instant::now();
    let creates = (0..count).map(|index| {
        let pods = pods.clone();
        let pod = bare_pod(&env.agent_image, index);
        async move { pods.create(&PostParams::default(), &pod).await }
    });
    futures::future::try_join_all(creates).await?;
    let seen = wait_all(&watch, count, |seen| seen.pod_ready.is_some()).await?;
    watch.abort();
    namespace.delete().await?;
    Ok(seen
        .values()
        .filter_map(|s| Some(s.pod_ready? - start))
        .collect())
}

/// Phases of session start-up, per session.
struct SessionTimes {
    operator: Vec<Duration>,
    pod_start: Vec<Duration>,
    status: Vec<Duration>,
    total: Vec<Duration>,
}

async fn sessions(env: &TestEnv, client: &Client, count: usize) -> Result<SessionTimes> {
    let namespace = TestNamespace::create(client, "bench-sessions").await?;
    let ns = namespace.name().to_owned();
    let metrics = free_local_addr()?;
    let args = [
        "--agent-image",
        &env.agent_image,
        "--agent-image-pull-policy",
        "Never",
        "--watch-namespace",
        &ns,
        "--lease-namespace",
        &ns,
        "--identity",
        "bench",
        "--metrics-addr",
        &metrics.to_string(),
    ]
    .map(String::from);
    let _operator = Process::start("huddle-operator", &format!("operator-{ns}"), &args)?;
    // Let the operator take its lease and start watching before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pods = spawn_pod_watch(Api::<Pod>::namespaced(client.clone(), &ns));
    let sessions_api = Api::<Session>::namespaced(client.clone(), &ns);
    let sessions = spawn_session_watch(sessions_api.clone());
    let start = Instant::now();
    let creates = (0..count).map(|index| {
        let api = sessions_api.clone();
        async move {
            let session: Session = serde_json::from_value(json!({
                "apiVersion": "huddle.dev/v1alpha1", "kind": "Session",
                "metadata": { "name": format!("b{index}") }, "spec": {}
            }))?;
            api.create(&PostParams::default(), &session).await?;
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(creates).await?;
    let running = wait_all(&sessions, count, |seen| seen.session_running.is_some()).await?;
    let pod_seen = wait_all(&pods, count, |seen| seen.pod_ready.is_some()).await?;
    pods.abort();
    sessions.abort();

    let mut times = SessionTimes {
        operator: vec![],
        pod_start: vec![],
        status: vec![],
        total: vec![],
    };
    for (name, session) in &running {
        let pod = pod_seen
            .get(&format!("{name}-workspace"))
            .context("no pod seen for a session")?;
        let (Some(created), Some(ready), Some(done)) =
            (pod.pod_created, pod.pod_ready, session.session_running)
        else {
            continue;
        };
        times.operator.push(created - start);
        times.pod_start.push(ready - created);
        times.status.push(done.saturating_duration_since(ready));
        times.total.push(done - start);
    }
    namespace.delete().await?;
    Ok(times)
}

type Watch = (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::Mutex<HashMap<String, Seen>>>,
);

trait Abort {
    fn abort(&self);
}
impl Abort for Watch {
    fn abort(&self) {
        self.0.abort();
    }
}

fn spawn_pod_watch(api: Api<Pod>) -> Watch {
    spawn_watch(api, |pod, now, seen| {
        seen.pod_created.get_or_insert(now);
        let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        if conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")) {
            seen.pod_ready.get_or_insert(now);
        }
    })
}

fn spawn_session_watch(api: Api<Session>) -> Watch {
    spawn_watch(api, |session, now, seen| {
        if session.status.as_ref().and_then(|s| s.phase) == Some(SessionPhase::Running) {
            seen.session_running.get_or_insert(now);
        }
    })
}

/// Watches `api`, calling `record` with each object's entry the moment an update arrives.
fn spawn_watch<K>(api: Api<K>, record: fn(&K, Instant, &mut Seen)) -> Watch
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let seen = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, Seen>::new()));
    let shared = seen.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(object)) = stream.try_next().await {
            let now = Instant::now();
            if let Ok(mut map) = shared.lock() {
                record(&object, now, map.entry(object.name_any()).or_default());
            }
        }
    });
    (task, seen)
}

async fn wait_all(
    watch: &Watch,
    count: usize,
    done: impl Fn(&Seen) -> bool,
) -> Result<HashMap<String, Seen>> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let snapshot = watch.1.lock().map(|map| map.clone()).unwrap_or_default();
        if snapshot.values().filter(|seen| done(seen)).count() >= count {
            return Ok(snapshot);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for {count} objects"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn bare_pod(image: &str, index: usize) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": format!("p{index}") },
        "spec": {
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": { "runAsNonRoot": true, "runAsUser": 65532 },
            "containers": [{
                "name": "agent", "image": image, "imagePullPolicy": "Never",
                "readinessProbe": { "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 }
            }]
        }
    }))
    .unwrap_or_default();
    pod.metadata.namespace = None;
    pod
}

fn stats(values: &[Duration]) -> String {
    let mut sorted: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return "n/a".into();
    }
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    format!("median {median:6.2} s  max {max:6.2} s")
}

fn median(values: &[Duration]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(count: usize, baseline: &[Duration], sessions: &SessionTimes) {
    println!("{count} at once:");
    println!(
        "  baseline: bare pod create → Ready       {}",
        stats(baseline)
    );
    println!(
        "  session:  create → pod exists (operator) {}",
        stats(&sessions.operator)
    );
    println!(
        "            pod exists → pod Ready         {}",
        stats(&sessions.pod_start)
    );
    println!(
        "            pod Ready → phase Running      {}",
        stats(&sessions.status)
    );
    println!(
        "            create → Running (total)       {}",
        stats(&sessions.total)
    );
    println!(
        "  ratio total/baseline (medians): {:.2}\n",
        median(&sessions.total) / median(baseline)
    );
}
