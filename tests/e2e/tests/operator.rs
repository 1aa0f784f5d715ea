//! The operator against the real test cluster: the Session CRD installed from the chart's YAML,
//! the operator binary running as a process with the admin kubeconfig, real pods on the real
//! kubelet. Each test has its own namespace, its own operator(s) watching only that namespace,
//! and its own Lease, so tests run in parallel without seeing each other.

use anyhow::{Context as _, Result, bail, ensure};
use huddle_crds::session::{Session, SessionPhase, SessionState};
use huddle_protocol::Role;
use huddle_protocol::token::{Claims, TokenKey, session_key};
use huddle_test_harness::{
    Process, TestEnv, TestNamespace, free_local_addr, install_crd, poll_until, wait_for_object_gone,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Event, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The master key every operator in these tests gets, as the gateway's would be.
const MASTER_KEY: &str = "e2e-master-key-0123456789abcdef-0123456789";

/// The test cluster with the CRD installed and a namespace for one test.
struct Fixture {
    env: TestEnv,
    client: Client,
    namespace: TestNamespace,
    sessions: Api<Session>,
    pods: Api<Pod>,
}

impl Fixture {
    async fn new(prefix: &str) -> Result<Self> {
        let env = TestEnv::from_env()?;
        let client = env.kube_client().await?;
        install_crd(&client).await?;
        let namespace = TestNamespace::create(&client, prefix).await?;
        Ok(Self {
            sessions: Api::namespaced(client.clone(), namespace.name()),
            pods: Api::namespaced(client.clone(), namespace.name()),
            env,
            client,
            namespace,
        })
    }

    fn ns(&self) -> &str {
        self.namespace.name()
    }

    /// Starts an operator replica watching this test's namespace.
    fn operator(&self, replica: &str) -> Result<Operator> {
        let metrics = free_local_addr()?;
        let args = [
            "--agent-image",
            &self.env.agent_image,
            "--agent-image-pull-policy",
            "Never",
            "--public-url",
            "https://huddle.test",
            "--watch-namespace",
            self.ns(),
            "--lease-namespace",
            self.ns(),
            "--identity",
            replica,
            "--metrics-addr",
            &metrics.to_string(),
            "--token-key",
            MASTER_KEY,
        ]
        .map(String::from);
        let process = Process::start(
            "huddle-operator",
            &format!("operator-{}-{replica}", self.ns()),
            &args,
        )?;
        Ok(Operator { process, metrics })
    }

    async fn create_session(&self, name: &str, spec: serde_json::Value) -> Result<Session> {
        let session: Session = serde_json::from_value(json!({
            "apiVersion": "huddle.dev/v1alpha1",
            "kind": "Session",
            "metadata": { "name": name },
            "spec": spec,
        }))?;
        Ok(self
            .sessions
            .create(&PostParams::default(), &session)
            .await?)
    }

    /// Creates a Session from raw JSON, bypassing our types, so the API server is the one
    /// judging the spec.
    async fn create_raw_session(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        use kube::core::{ApiResource, DynamicObject};
        let resource = ApiResource::erase::<Session>(&());
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), self.ns(), &resource);
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "huddle.dev/v1alpha1",
            "kind": "Session",
            "metadata": { "name": name },
            "spec": spec,
        }))?;
        api.create(&PostParams::default(), &object).await?;
        Ok(())
    }

    async fn wait_for_phase(&self, name: &str, phase: SessionPhase) -> Result<Session> {
        poll_until(
            &format!("session {name} to be {phase:?}"),
            READY_TIMEOUT,
            || async {
                let session = self.sessions.get(name).await?;
                let current = session.status.as_ref().and_then(|s| s.phase);
                Ok((current == Some(phase)).then_some(session))
            },
        )
        .await
    }

    async fn set_state(&self, name: &str, state: SessionState) -> Result<()> {
        self.sessions
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "state": state } })),
            )
            .await?;
        Ok(())
    }

    async fn pods_of(&self, name: &str) -> Result<Vec<Pod>> {
        let selector = format!("huddle.dev/session={name}");
        Ok(self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items)
    }
}

struct Operator {
    process: Process,
    metrics: SocketAddr,
}

impl Operator {
    async fn metrics(&self) -> Result<String> {
        let url = format!("http://{}/metrics", self.metrics);
        Ok(reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(url)
            .send()
            .await?
            .text()
            .await?)
    }

    /// The value of a metric line such as `huddle_operator_reconciliations_total`.
    async fn metric(&self, name: &str) -> Result<f64> {
        let text = self.metrics().await?;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("metric {name} not found in:\n{text}"))
    }
}

fn condition<'a>(
    session: &'a Session,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    session
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

async fn healthz(env: &TestEnv, ip: &str) -> Result<String> {
    let response = env
        .http_client()?
        .get(format!("http://{ip}:8080/healthz"))
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "agent at {ip} answered {}",
        response.status()
    );
    Ok(response.text().await?)
}

/// The agent of a Running session answers at the pod IP its status names.
async fn agent_answers(env: &TestEnv, session: &Session) -> Result<()> {
    let ip = session
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("no podIP")?;
    assert_eq!(healthz(env, ip).await?, "ok");
    Ok(())
}

/// Session `s1`'s key: its own Secret, owned by the Session, holding the key derived from the
/// master key; the pod reads it by reference; tokens the gateway would sign with it open the
/// agent's file routes, tokens signed with the master key or another session's key do not.
/// A deleted Secret is put back.
async fn session_key_reaches_the_agent(fx: &Fixture, pod: &Pod, ip: &str) -> Result<()> {
    let master = TokenKey::new(MASTER_KEY)?;
    let (text, gateway_key) = session_key(&master, "s1");
    let secrets = Api::<Secret>::namespaced(fx.client.clone(), fx.ns());
    let secret = secrets.get("s1-workspace").await?;
    let owner = secret
        .owner_references()
        .first()
        .context("the Secret has no owner")?;
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Session", "s1", Some(true))
    );
    assert_eq!(
        Some(owner.uid.as_str()),
        fx.sessions.get("s1").await?.metadata.uid.as_deref()
    );
    assert_eq!(
        secret
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("huddle-operator")
    );
    let stored = secret
        .data
        .as_ref()
        .and_then(|data| data.get("token-key"))
        .context("no token-key in the Secret")?;
    assert_eq!(stored.0, text.as_bytes(), "not the derived session key");

    // The pod spec names the Secret; the key itself is nowhere in it.
    let container = &pod.spec.as_ref().context("pod has no spec")?.containers[0];
    let env = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "HUDDLE_TOKEN_KEY")
        .context("no HUDDLE_TOKEN_KEY in the pod")?;
    assert_eq!(env.value, None, "the key is a literal in the pod spec");
    let selector = env
        .value_from
        .as_ref()
        .and_then(|from| from.secret_key_ref.as_ref())
        .context("HUDDLE_TOKEN_KEY is not from a Secret")?;
    assert_eq!(
        (selector.name.as_str(), selector.key.as_str()),
        ("s1-workspace", "token-key")
    );
    ensure!(
        !serde_json::to_string(pod)?.contains(&text),
        "the key appears in the pod"
    );

    // What the gateway signs with the session key opens the agent; nothing else does.
    let sign = |key: &TokenKey, role| key.sign(&Claims::new("s1", "ada", "u-ada", role, 300));
    let http = fx.env.http_client()?;
    let url = format!("http://{ip}:8080/files/hello.txt");
    let put = http
        .put(&url)
        .bearer_auth(sign(&gateway_key, Role::Editor))
        .body("hi from e2e\n")
        .send()
        .await?;
    assert_eq!(put.status(), 204, "{}", put.text().await?);
    let get = http
        .get(&url)
        .bearer_auth(sign(&gateway_key, Role::Viewer))
        .send()
        .await?;
    assert_eq!(get.status(), 200);
    assert_eq!(get.text().await?, "hi from e2e\n");
    let (_, other_session) = session_key(&master, "s2");
    for (what, key) in [("master", &master), ("session s2's", &other_session)] {
        let refused = http
            .get(&url)
            .bearer_auth(sign(key, Role::Owner))
            .send()
            .await?;
        assert_eq!(refused.status(), 401, "a token signed with the {what} key");
    }

    // The Secret is watched: deleted, it is back long before the periodic resync.
    let first_uid = secret.uid();
    secrets
        .delete("s1-workspace", &DeleteParams::default())
        .await?;
    let restored = poll_until(
        "the key Secret to be applied again",
        Duration::from_secs(20),
        || async {
            let secret = secrets.get_opt("s1-workspace").await?;
            Ok(secret.filter(|s| s.uid() != first_uid))
        },
    )
    .await?;
    ensure!(
        restored.data.as_ref().and_then(|d| d.get("token-key")) == Some(stored),
        "the recreated Secret holds another key"
    );
    Ok(())
}

#[tokio::test]
async fn session_becomes_ready_with_status_events_and_a_locked_down_pod() -> Result<()> {
    let fx = Fixture::new("op-ready").await?;
    let operator = fx.operator("a")?;
    let created = fx
        .create_session("s1", json!({ "owner": "ada", "ports": [{ "port": 3000, "visibility": "public", "name": "web" }] }))
        .await?;

    let session = fx.wait_for_phase("s1", SessionPhase::Running).await?;
    let status = session.status.clone().context("no status")?;
    let types: Vec<(&str, &str)> = status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("PodScheduled", "True"),
            ("AgentReady", "True"),
            ("Ready", "True"),
            ("StatePersisted", "Unknown")
        ]
    );
    assert_eq!(status.observed_generation, created.metadata.generation);
    assert_eq!(
        status.message, None,
        "a Running session has no false condition"
    );
    assert_eq!(status.url.as_deref(), Some("https://huddle.test/s/s1/"));
    assert_eq!(status.ports.len(), 1);
    assert_eq!(status.ports[0].url, "https://port-3000-s1.huddle.test/");

    // The agent answers at the pod IP written to status.
    let ip = status.pod_ip.clone().context("no podIP")?;
    assert_eq!(healthz(&fx.env, &ip).await?, "ok");

    // The live pod is as locked down as promised.
    let pod = fx.pods.get("s1-workspace").await?;
    let spec = pod.spec.clone().context("pod has no spec")?;
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert!(
        spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| !m.mount_path.contains("serviceaccount")),
        "a service-account token is mounted"
    );
    let security = spec.containers[0]
        .security_context
        .clone()
        .context("no securityContext")?;
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        spec.security_context.and_then(|s| s.run_as_non_root),
        Some(true)
    );
    assert_eq!(pod.owner_references()[0].name, "s1");
    // And a Service selects it.
    let services = Api::<Service>::namespaced(fx.client.clone(), fx.ns());
    let service = services.get("s1-workspace").await?;
    let ports: Vec<i32> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, vec![8080, 3000]);

    session_key_reaches_the_agent(&fx, &pod, &ip).await?;

    // Events for the transitions, on the Session.
    let events = Api::<Event>::namespaced(fx.client.clone(), fx.ns());
    let reasons = poll_until(
        "Events for the Running transition",
        Duration::from_secs(20),
        || async {
            let list = events
                .list(
                    &ListParams::default()
                        .fields("involvedObject.kind=Session,involvedObject.name=s1"),
                )
                .await?;
            let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
            Ok(reasons.iter().any(|r| r == "Running").then_some(reasons))
        },
    )
    .await?;
    assert!(
        reasons.iter().any(|r| r == "Pending" || r == "Starting"),
        "events: {reasons:?}"
    );

    // The gateway owns participants and activity: written under its own field manager, they
    // survive the operator's later status writes (server-side apply keeps each owner's fields).
    fx.sessions
        .patch_status(
            "s1",
            &PatchParams::apply("huddle-gateway"),
            &Patch::Apply(json!({
                "apiVersion": "huddle.dev/v1alpha1", "kind": "Session",
                "status": { "participants": 3, "lastActivityTime": "2026-01-01T00:00:00Z" }
            })),
        )
        .await?;
    // A spec change makes the operator write status again (new observedGeneration).
    fx.sessions
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "owner": "grace" } })),
        )
        .await?;
    let rewritten = poll_until(
        "the operator to observe the new generation",
        READY_TIMEOUT,
        || async {
            let session = fx.sessions.get("s1").await?;
            let observed = session.status.as_ref().and_then(|s| s.observed_generation);
            Ok((observed == session.metadata.generation).then_some(session))
        },
    )
    .await?;
    let status = rewritten.status.context("no status")?;
    assert_eq!(status.participants, Some(3));
    assert!(status.last_activity_time.is_some());
    assert_eq!(status.phase, Some(SessionPhase::Running));

    // kubectl shows phase, URL and age columns.
    let output = std::process::Command::new("kubectl")
        .args(["get", "hs", "-n", fx.ns()])
        .output()?;
    let table = String::from_utf8(output.stdout)?;
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "PHASE", "URL", "PARTICIPANTS", "AGE"] {
        assert!(
            header.contains(column),
            "kubectl get hs header lacks {column}: {table}"
        );
    }
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.split_whitespace().any(|cell| cell == "3"),
        "participants column: {table}"
    );
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.split_whitespace().any(|cell| cell == "3"),
        "participants column: {table}"
    );
    assert!(
        table.contains("Running") && table.contains("https://huddle.test/s/s1/"),
        "{table}"
    );

    // Metrics: reconciles counted, one time-to-Ready observed.
    assert!(
        operator
            .metric("huddle_operator_reconciliations_total")
            .await?
            >= 1.0
    );
    assert_eq!(
        operator
            .metric("huddle_operator_session_ready_seconds_count")
            .await?,
        1.0
    );
    assert_eq!(operator.metric("huddle_operator_leader").await?, 1.0);

    drop(operator);
    fx.namespace.delete().await
}

#[tokio::test]
async fn hibernate_removes_the_pod_and_resume_brings_a_new_one() -> Result<()> {
    let fx = Fixture::new("op-hibernate").await?;
    let _operator = fx.operator("a")?;
    fx.create_session("s2", json!({})).await?;
    let running = fx.wait_for_phase("s2", SessionPhase::Running).await?;
    let first_pod = fx.pods.get("s2-workspace").await?.uid();

    fx.set_state("s2", SessionState::Hibernated).await?;
    let hibernated = fx.wait_for_phase("s2", SessionPhase::Hibernated).await?;
    ensure!(
        fx.pods_of("s2").await?.is_empty(),
        "pod left after hibernation"
    );
    let status = hibernated.status.context("no status")?;
    assert_eq!(status.stop_reason.as_deref(), Some("UserRequest"));
    assert_eq!(status.pod_ip, None);
    assert_eq!(
        status
            .message
            .as_deref()
            .map(|m| m.starts_with("Hibernated:")),
        Some(true)
    );
    assert!(status.observed_generation > running.metadata.generation);

    fx.set_state("s2", SessionState::Running).await?;
    let resumed = fx.wait_for_phase("s2", SessionPhase::Running).await?;
    let second_pod = fx.pods.get("s2-workspace").await?.uid();
    assert_ne!(first_pod, second_pod, "resume must start a new pod");
    agent_answers(&fx.env, &resumed).await?;
    fx.namespace.delete().await
}

#[tokio::test]
async fn deleting_a_session_removes_pod_service_and_claim() -> Result<()> {
    let fx = Fixture::new("op-delete").await?;
    let _operator = fx.operator("a")?;
    // No dynamic provisioner in the test cluster: a pre-made volume of our own class binds
    // the claim, as it would on a cluster with static provisioning.
    let class = format!("manual-{}", fx.ns());
    let volumes = Api::<PersistentVolume>::all(fx.client.clone());
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": { "name": fx.ns() },
        "spec": {
            "capacity": { "storage": "1Gi" },
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": { "path": format!("/tmp/huddle-cluster/volumes/{}", fx.ns()), "type": "DirectoryOrCreate" }
        }
    }))?;
    volumes.create(&PostParams::default(), &volume).await?;

    fx.create_session(
        "s3",
        json!({ "storage": { "size": "1Gi", "storageClassName": class } }),
    )
    .await?;
    let session = fx.wait_for_phase("s3", SessionPhase::Running).await?;
    let persisted = condition(&session, "StatePersisted").context("no StatePersisted")?;
    assert_eq!(
        (persisted.status.as_str(), persisted.reason.as_str()),
        ("True", "PersistentVolume")
    );
    let claims = Api::<PersistentVolumeClaim>::namespaced(fx.client.clone(), fx.ns());
    let services = Api::<Service>::namespaced(fx.client.clone(), fx.ns());
    let claim = claims.get("s3-workspace").await?;
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));

    fx.sessions
        .delete("s3", &DeleteParams::background())
        .await?;
    wait_for_object_gone(&fx.sessions, "s3", Duration::from_secs(30)).await?;
    wait_for_object_gone(&fx.pods, "s3-workspace", Duration::from_secs(60)).await?;
    wait_for_object_gone(&services, "s3-workspace", Duration::from_secs(30)).await?;
    wait_for_object_gone(&claims, "s3-workspace", Duration::from_secs(60)).await?;

    let _ = volumes.delete(fx.ns(), &DeleteParams::default()).await;
    fx.namespace.delete().await
}

#[tokio::test]
async fn a_deleted_pod_is_recreated() -> Result<()> {
    let fx = Fixture::new("op-recreate").await?;
    let _operator = fx.operator("a")?;
    fx.create_session("s4", json!({})).await?;
    fx.wait_for_phase("s4", SessionPhase::Running).await?;
    let first = fx.pods.get("s4-workspace").await?.uid();

    fx.pods
        .delete("s4-workspace", &DeleteParams::default().grace_period(0))
        .await?;
    let replacement = poll_until("a replacement pod", READY_TIMEOUT, || async {
        let pod = fx.pods.get_opt("s4-workspace").await?;
        Ok(pod.filter(|p| p.uid() != first).map(|p| p.uid()))
    })
    .await?;
    let session = fx.wait_for_phase("s4", SessionPhase::Running).await?;
    assert_eq!(fx.pods_of("s4").await?.len(), 1);
    assert_ne!(replacement, first);
    agent_answers(&fx.env, &session).await?;
    fx.namespace.delete().await
}

#[tokio::test]
async fn an_unschedulable_pod_is_reported_not_failed() -> Result<()> {
    let fx = Fixture::new("op-unsched").await?;
    let _operator = fx.operator("a")?;
    fx.create_session(
        "s5",
        json!({ "resources": { "requests": { "cpu": "500" } } }),
    )
    .await?;
    let session = poll_until(
        "the scheduler's verdict in status.message",
        READY_TIMEOUT,
        || async {
            let session = fx.sessions.get("s5").await?;
            let message = session
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_default();
            Ok(message.contains("Insufficient cpu").then_some(session))
        },
    )
    .await?;
    let status = session.status.context("no status")?;
    assert_eq!(status.phase, Some(SessionPhase::Pending));
    let scheduled = &status.conditions[0];
    assert_eq!(
        (scheduled.type_.as_str(), scheduled.status.as_str()),
        ("PodScheduled", "False")
    );
    assert_eq!(scheduled.reason, "Unschedulable");
    fx.namespace.delete().await
}

#[tokio::test]
async fn invalid_specs_are_rejected_by_the_api_server() -> Result<()> {
    let fx = Fixture::new("op-invalid").await?;
    let cases = [
        (json!({ "idleTimeout": "-5m" }), "spec.idleTimeout"),
        (
            json!({ "idleTimeout": "0s" }),
            "must be a positive duration",
        ),
        (json!({ "maxLifetime": "forever" }), "spec.maxLifetime"),
        (
            json!({ "ports": [{ "port": 0 }] }),
            "greater than or equal to 1",
        ),
        (
            json!({ "ports": [{ "port": 70000 }] }),
            "less than or equal to 65535",
        ),
        (
            json!({ "ports": [{ "port": 3000 }, { "port": 3000 }] }),
            "Duplicate value",
        ),
        (
            json!({ "ports": [{ "port": 3000, "visibility": "open" }] }),
            "supported values: \"private\", \"public\"",
        ),
        (
            json!({ "state": "Paused" }),
            "supported values: \"Running\", \"Hibernated\"",
        ),
        (
            json!({ "template": { "files": { "../escape": "x" } } }),
            "stay inside the workspace",
        ),
        (json!({ "template": {} }), "exactly one of git or files"),
    ];
    for (index, (spec, expected)) in cases.into_iter().enumerate() {
        let error = match fx
            .create_raw_session(&format!("bad{index}"), spec.clone())
            .await
        {
            Ok(_) => bail!("spec {spec} was accepted"),
            Err(error) => format!("{error:#}"),
        };
        ensure!(
            error.contains(expected),
            "spec {spec}: expected {expected:?} in {error}"
        );
        ensure!(
            error.contains("422") || error.contains("Invalid"),
            "not a validation error: {error}"
        );
    }
    let long_name = "n".repeat(53);
    let error = fx
        .create_raw_session(&long_name, json!({}))
        .await
        .err()
        .context("53-character name accepted")?;
    ensure!(
        format!("{error:#}").contains("at most 52 characters"),
        "{error:#}"
    );
    ensure!(
        fx.sessions
            .list(&ListParams::default())
            .await?
            .items
            .is_empty(),
        "a rejected session was stored"
    );
    fx.namespace.delete().await
}

#[tokio::test]
async fn a_restarted_operator_converges_without_duplicates() -> Result<()> {
    let fx = Fixture::new("op-restart").await?;
    let first = fx.operator("a")?;
    fx.create_session("s6", json!({})).await?;
    // Kill the operator as soon as it has created the pod, before the session is Running.
    poll_until("the pod to be created", READY_TIMEOUT, || async {
        Ok((!fx.pods_of("s6").await?.is_empty()).then_some(()))
    })
    .await?;
    first.process.kill()?;
    // A second session created while no operator runs.
    fx.create_session("s7", json!({})).await?;

    let _second = fx.operator("b")?;
    for name in ["s6", "s7"] {
        fx.wait_for_phase(name, SessionPhase::Running).await?;
        assert_eq!(fx.pods_of(name).await?.len(), 1, "{name}: duplicate pods");
    }
    let services = Api::<Service>::namespaced(fx.client.clone(), fx.ns());
    assert_eq!(services.list(&ListParams::default()).await?.items.len(), 2);
    fx.namespace.delete().await
}

#[tokio::test]
async fn two_replicas_never_fight() -> Result<()> {
    let fx = Fixture::new("op-leader").await?;
    let a = fx.operator("a")?;
    let leases = Api::<Lease>::namespaced(fx.client.clone(), fx.ns());
    poll_until("replica a to lead", Duration::from_secs(30), || async {
        let lease = leases.get_opt("huddle-operator").await?;
        let holder = lease.and_then(|l| l.spec).and_then(|s| s.holder_identity);
        Ok((holder.as_deref() == Some("a")).then_some(()))
    })
    .await?;
    let b = fx.operator("b")?;
    fx.create_session("s8", json!({})).await?;
    fx.wait_for_phase("s8", SessionPhase::Running).await?;

    // The follower waits: it never reconciled, and says it does not lead.
    assert_eq!(b.metric("huddle_operator_leader").await?, 0.0);
    assert_eq!(
        b.metric("huddle_operator_reconciliations_total").await?,
        0.0
    );
    assert!(a.metric("huddle_operator_reconciliations_total").await? >= 1.0);

    // The leader goes away uncleanly; the follower takes over once the lease expires.
    a.process.kill()?;
    poll_until("replica b to lead", Duration::from_secs(45), || async {
        let holder = leases
            .get("huddle-operator")
            .await?
            .spec
            .and_then(|s| s.holder_identity);
        Ok((holder.as_deref() == Some("b")).then_some(()))
    })
    .await?;
    fx.create_session("s9", json!({})).await?;
    fx.wait_for_phase("s9", SessionPhase::Running).await?;
    assert_eq!(b.metric("huddle_operator_leader").await?, 1.0);
    assert_eq!(fx.pods_of("s8").await?.len(), 1);
    fx.namespace.delete().await
}
