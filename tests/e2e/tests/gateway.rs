//! The gateway against the real test cluster: sessions created through its API become Session
//! resources, the operator runs their pods, and browsers' WebSockets reach the agents through
//! the gateway. Replicas share the cluster's Redis and PostgreSQL.

use anyhow::{Context as _, Result, ensure};
use huddle_crds::names;
use huddle_crds::session::{Session, SessionState};
use huddle_e2e::agent_ws::{self, Ws, send};
use huddle_test_harness::{
    Process, TestEnv, TestNamespace, free_local_addr, install_crd, poll_until,
};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

const DOMAIN: &str = "huddle.test";
const ADMIN: &str = "e2e-admin-token-0123456789abcdef";
const MASTER_KEY: &str = "e2e-master-key-0123456789abcdef0123456789";
const READY: Duration = Duration::from_secs(120);

struct Cluster {
    env: TestEnv,
    namespace: TestNamespace,
    sessions: Api<Session>,
    _operator: Process,
    /// The internal address every gateway of this test serves snapshots on (pods restore from
    /// it); `gateway()` hands it to the first gateway only.
    restore_addr: SocketAddr,
}

struct GatewayProcess {
    process: Process,
    addr: SocketAddr,
}

impl Cluster {
    async fn new(prefix: &str) -> Result<Self> {
        let env = TestEnv::from_env()?;
        let client = env.kube_client().await?;
        install_crd(&client).await?;
        let namespace = TestNamespace::create(&client, prefix).await?;
        let node_ip = std::env::var("HUDDLE_TEST_NODE_IP").context("HUDDLE_TEST_NODE_IP")?;
        let restore_addr = SocketAddr::new("0.0.0.0".parse()?, free_local_addr()?.port());
        let restore_url = format!(
            "http://{node_ip}:{}/internal/snapshots/{{namespace}}/{{name}}",
            restore_addr.port()
        );
        let metrics = free_local_addr()?;
        let args = [
            "--agent-image",
            &env.agent_image,
            "--agent-image-pull-policy",
            "Never",
            "--public-url",
            "http://huddle.test",
            "--watch-namespace",
            namespace.name(),
            "--lease-namespace",
            namespace.name(),
            "--metrics-addr",
            &metrics.to_string(),
            "--token-key",
            MASTER_KEY,
            "--restore-url",
            &restore_url,
        ]
        .map(String::from);
        let operator = Process::start(
            "huddle-operator",
            &format!("operator-{}", namespace.name()),
            &args,
        )?;
        Ok(Self {
            sessions: Api::namespaced(client, namespace.name()),
            env,
            namespace,
            _operator: operator,
            restore_addr,
        })
    }

    /// A gateway replica with the Kubernetes runtime, sharing Redis and PostgreSQL.
    async fn gateway(
        &self,
        name: &str,
        redis_url: &str,
        serves_restore: bool,
    ) -> Result<GatewayProcess> {
        let addr = free_local_addr()?;
        let internal = if serves_restore {
            self.restore_addr
        } else {
            free_local_addr()?
        };
        let args = vec![
            "--runtime=kubernetes".to_owned(),
            format!("--listen={addr}"),
            format!("--internal-listen={internal}"),
            format!("--public-url=http://{DOMAIN}:{}", addr.port()),
            format!("--session-namespace={}", self.namespace.name()),
            format!("--token-key={MASTER_KEY}"),
            format!("--admin-token={ADMIN}"),
            format!("--database-url={}", self.env.database_url),
            format!("--redis-url={redis_url}"),
            format!("--replica={name}"),
            format!(
                "--upgrade-socket=/tmp/huddle-e2e-{name}-{}.sock",
                addr.port()
            ),
            format!("--data-dir=/tmp/huddle-e2e-{name}-{}", addr.port()),
        ];
        let process = Process::start(
            "huddle-gateway",
            &format!("gateway-{}-{name}", self.namespace.name()),
            &args,
        )?;
        let gateway = GatewayProcess { process, addr };
        let client = gateway.client();
        poll_until(
            "the gateway answers /healthz",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                let url = gateway.url("/healthz");
                async move {
                    Ok(client
                        .get(url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ()))
                }
            },
        )
        .await
        .with_context(|| gateway.process.log_tail(30))?;
        Ok(gateway)
    }
}

impl GatewayProcess {
    fn url(&self, path: &str) -> String {
        format!("http://{DOMAIN}:{}{path}", self.addr.port())
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(DOMAIN, self.addr)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    }

    async fn create(&self, body: Value) -> Result<(String, String)> {
        let response = self
            .client()
            .post(self.url("/api/sessions"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let created: Value = response.json().await?;
        ensure!(status == 201, "create answered {status}: {created}");
        let id = created["id"].as_str().context("id")?.to_owned();
        let owner = created["ownerLink"]
            .as_str()
            .and_then(|link| link.split("token=").nth(1))
            .context("owner link")?
            .to_owned();
        Ok((id, owner))
    }

    /// Waits until the session's agent answers through this gateway.
    async fn wait_ready(&self, id: &str, token: &str) -> Result<()> {
        let client = self.client();
        let url = self.url(&format!("/s/{id}/version"));
        poll_until(
            "the session's agent answers through the gateway",
            READY,
            || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let response = client.get(&url).bearer_auth(token).send().await;
                    Ok(agent_ws::is_agent_banner(response).await.then_some(()))
                }
            },
        )
        .await
        .with_context(|| self.process.log_tail(30))
    }

    /// Joins through this gateway (reconnecting when pingora cuts the socket right after its
    /// `101`, see `agent_ws::join`).
    async fn join(&self, id: &str, token: &str, client_id: &str) -> Result<Ws> {
        let host = format!("{DOMAIN}:{}", self.addr.port());
        agent_ws::join(self.addr, &host, id, token, client_id).await
    }
}

/// The next message of type `kind`, within 30 s.
async fn recv(ws: &mut Ws, kind: &str) -> Result<Value> {
    agent_ws::recv(ws, kind, Duration::from_secs(30)).await
}

#[tokio::test]
async fn api_session_becomes_a_pod_reached_through_the_gateway_and_wakes_restored() -> Result<()> {
    let cluster = Cluster::new("e2e-gw").await?;
    let gateway = cluster.gateway("a", &cluster.env.redis_url, true).await?;
    let (id, owner) = gateway
        .create(json!({"owner": "Ada", "ports": [{"port": 3000, "visibility": "public"}]}))
        .await?;

    // The API made a Session resource with what was asked for.
    let session = cluster.sessions.get(&id).await?;
    assert_eq!(session.spec.owner.as_deref(), Some("Ada"));
    assert_eq!(session.spec.state, SessionState::Running);
    assert_eq!(session.spec.ports[0].port, 3000);

    // The operator's pod serves the agent; a WebSocket through the gateway joins and edits.
    gateway.wait_ready(&id, &owner).await?;
    let mut ws = gateway.join(&id, &owner, "tab").await?;
    send(&mut ws, json!({"type": "create_file", "path": "hello.txt"})).await?;
    recv(&mut ws, "file_changed").await?;
    send(&mut ws, json!({"type": "open", "file": "hello.txt"})).await?;
    let document = recv(&mut ws, "document").await?;
    let rev = document["rev"].as_u64().context("rev")?;
    send(&mut ws, json!({"type": "op", "file": "hello.txt", "base_rev": rev, "seq": 1, "op": ["saved in postgres"]})).await?;
    let ack = recv(&mut ws, "op").await?;
    drop(ws);

    // Hibernate through the API: snapshot into PostgreSQL, then spec.state and annotations.
    let response = gateway
        .client()
        .post(gateway.url(&format!("/api/sessions/{id}/hibernate")))
        .bearer_auth(&owner)
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "hibernate: {}",
        response.text().await?
    );
    let session = cluster.sessions.get(&id).await?;
    assert_eq!(session.spec.state, SessionState::Hibernated);
    assert!(
        session
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(names::SNAPSHOT_ANNOTATION))
    );
    let pods: Api<Pod> =
        Api::namespaced(cluster.env.kube_client().await?, cluster.namespace.name());
    let pod_name = names::workspace_object_name(&id);
    poll_until("the pod is removed", READY, || async {
        Ok(pods.get_opt(&pod_name).await?.is_none().then_some(()))
    })
    .await?;

    // A visit wakes it: a new pod restores the snapshot from the gateway.
    let response = gateway
        .client()
        .get(gateway.url(&format!("/s/{id}/")))
        .bearer_auth(&owner)
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert_eq!(
        cluster.sessions.get(&id).await?.spec.state,
        SessionState::Running
    );
    gateway.wait_ready(&id, &owner).await?;
    let mut ws = gateway.join(&id, &owner, "tab-2").await?;
    send(&mut ws, json!({"type": "open", "file": "hello.txt"})).await?;
    let document = recv(&mut ws, "document").await?;
    assert_eq!(document["text"], "saved in postgres");
    assert_eq!(document["rev"], ack["rev"]);
    Ok(())
}

#[tokio::test]
async fn clients_of_a_killed_replica_reconnect_to_another_and_ops_apply_once() -> Result<()> {
    let cluster = Cluster::new("e2e-gw-ha").await?;
    let a = cluster.gateway("a", &cluster.env.redis_url, true).await?;
    let b = cluster.gateway("b", &cluster.env.redis_url, false).await?;
    let (id, owner) = a.create(json!({})).await?;
    a.wait_ready(&id, &owner).await?;
    b.wait_ready(&id, &owner).await?;

    let mut ws = a.join(&id, &owner, "tab").await?;
    send(&mut ws, json!({"type": "create_file", "path": "f.txt"})).await?;
    recv(&mut ws, "file_changed").await?;
    send(&mut ws, json!({"type": "open", "file": "f.txt"})).await?;
    let rev = recv(&mut ws, "document").await?["rev"]
        .as_u64()
        .context("rev")?;
    // The op leaves, and replica A dies before its acknowledgement is read.
    let op = json!({"type": "op", "file": "f.txt", "base_rev": rev, "seq": 1, "op": ["once"]});
    send(&mut ws, op.clone()).await?;
    a.process.kill()?;
    drop(ws);

    // The client reconnects through B with the same client id and, having no ack, resends.
    let mut ws = b.join(&id, &owner, "tab").await?;
    send(&mut ws, json!({"type": "open", "file": "f.txt"})).await?;
    let document = recv(&mut ws, "document").await?;
    send(&mut ws, op.clone()).await?;
    // Resent ops are acknowledged (again) without being applied twice.
    send(&mut ws, json!({"type": "close", "file": "f.txt"})).await?;
    send(&mut ws, json!({"type": "open", "file": "f.txt"})).await?;
    let after = recv(&mut ws, "document").await?;
    assert_eq!(after["text"], "once", "before resend: {document}");
    Ok(())
}

#[tokio::test]
async fn the_gateway_keeps_working_without_redis() -> Result<()> {
    let cluster = Cluster::new("e2e-gw-noredis").await?;
    // A Redis of this test's own, so it can be killed.
    let redis_port = free_local_addr()?.port();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting redis-server")?;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gateway = cluster.gateway("a", &redis_url, true).await?;
    let (first, first_owner) = gateway.create(json!({})).await?;
    gateway.wait_ready(&first, &first_owner).await?;

    redis.kill()?;
    redis.wait()?;
    // New sessions and lookups go to the Kubernetes API instead.
    let (second, second_owner) = gateway.create(json!({})).await?;
    gateway.wait_ready(&second, &second_owner).await?;
    let mut ws = gateway.join(&second, &second_owner, "tab").await?;
    send(&mut ws, json!({"type": "create_file", "path": "x"})).await?;
    recv(&mut ws, "file_changed").await?;
    // The first session is still reachable once its cached view has expired.
    tokio::time::sleep(Duration::from_secs(6)).await;
    gateway.wait_ready(&first, &first_owner).await?;
    Ok(())
}
