//! Huddle installed the way a platform team installs it: `helm install` of `charts/huddle` into
//! the test cluster (kube-proxy and CoreDNS included, so Services and `*.svc.cluster.local`
//! names work), with the images built by `tests/images/build-images.sh`, the cluster's own
//! PostgreSQL and Redis as the external stores, and `tests/chart/values/e2e.yaml`. Then, only
//! through the gateway's Service: a session made with the REST API becomes a Session and a pod,
//! two people edit together, a forwarded port answers, the session hibernates into PostgreSQL and
//! wakes with its file; `helm upgrade` rolls the gateway while a client keeps editing; and
//! `helm uninstall` leaves only what is meant to stay.

use anyhow::{Context as _, Result, bail, ensure};
use huddle_crds::names;
use huddle_crds::session::{Session, SessionPhase, SessionState};
use huddle_e2e::agent_ws::{self, Ws, recv, recv_where, send};
use huddle_test_harness::{TestEnv, TestNamespace, artifacts_dir, poll_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, LogParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/huddle");
const VALUES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../chart/values/e2e.yaml");
const RELEASE: &str = "huddle";
/// `domain` in e2e.yaml.
const DOMAIN: &str = "huddle.test";
/// The Secret e2e.yaml names for the stores' URLs; the test writes it, as a user would.
const STORES_SECRET: &str = "huddle-e2e-stores";
/// A Redis database of this test's own, so its gateways' keys (and their sweep lock) are not the
/// other tests' (Redis pub/sub channels are shared by every database; a change notice for a
/// session this release does not know is ignored).
const REDIS_DB: u32 = 7;
const FILE: &str = "notes.txt";
const FIRST_TEXT: &str = "written by Ada\n";
/// Port declared on the session, served by `busybox httpd` started in its terminal.
const PORT: u16 = 3000;
const READY: Duration = Duration::from_secs(120);

/// The `helm` client of the test cluster, with its own state folders.
struct Helm {
    bin: String,
    namespace: String,
    home: tempfile::TempDir,
}

impl Helm {
    fn new(namespace: &str) -> Result<Self> {
        Ok(Self {
            bin: TestEnv::var("HUDDLE_TEST_HELM")?,
            namespace: namespace.to_owned(),
            home: tempfile::tempdir()?,
        })
    }

    /// Runs `helm ARGS --namespace NS` and returns its output, or fails with it.
    async fn run(&self, args: &[&str]) -> Result<String> {
        let home = self.home.path();
        let output = tokio::process::Command::new(&self.bin)
            .args(args)
            .args(["--namespace", &self.namespace])
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .await
            .with_context(|| format!("running {}", self.bin))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        ensure!(
            output.status.success(),
            "helm {} failed ({}):\n{stdout}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(stdout)
    }
}

/// `psql` against the cluster's PostgreSQL: one statement, unaligned rows.
fn psql(url: &str, sql: &str) -> Result<String> {
    let output = std::process::Command::new("psql")
        .args([
            url,
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .context("running psql")?;
    ensure!(
        output.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `url` with its database (the last path segment) replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String> {
    let (base, _) = url
        .rsplit_once('/')
        .context("database URL without a path")?;
    Ok(format!("{base}/{database}"))
}

/// The gateway as everyone in the cluster reaches it: its Service's ClusterIP, routed by
/// kube-proxy to one of the replicas.
struct Gateway {
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).header("host", host)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).header("host", DOMAIN)
    }

    /// Waits until the session's agent answers through the gateway.
    async fn wait_ready(&self, id: &str, token: &str) -> Result<()> {
        poll_until(
            "the session's agent answers through the gateway",
            READY,
            || async {
                let response = self
                    .get(DOMAIN, &format!("/s/{id}/version"))
                    .bearer_auth(token)
                    .send()
                    .await;
                Ok(agent_ws::is_agent_banner(response).await.then_some(()))
            },
        )
        .await
    }

    /// Joins the session's agent over a WebSocket through the gateway (reconnecting when
    /// pingora cuts the socket right after its `101`, see `agent_ws::join`).
    async fn join(&self, id: &str, token: &str, client_id: &str) -> Result<Ws> {
        agent_ws::join(self.addr, DOMAIN, id, token, client_id).await
    }
}

/// Opens `FILE` and returns its `document`.
async fn open(ws: &mut Ws) -> Result<Value> {
    send(ws, json!({"type": "open", "file": FILE})).await?;
    recv(ws, "document", Duration::from_secs(15)).await
}

/// An op appending `text` to a document holding `current`.
fn append_op(current: &str, text: &str) -> Value {
    match current.chars().count() {
        0 => json!([text]),
        len => json!([len, text]),
    }
}

/// The token in a `Set-Cookie` header value (`name=token; Path=...`).
fn cookie_value(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?;
    Some(pair.split_once('=')?.1.to_owned())
}

/// A Deployment whose rollout is complete: the current generation observed, every replica
/// updated, available and Ready, and the Available condition true.
fn rolled_out(deployment: &Deployment) -> bool {
    let want = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    let available = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True");
    status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas == Some(want)
        && status.ready_replicas == Some(want)
        && status.available_replicas == Some(want)
        && status.replicas == Some(want)
        && available
}

async fn wait_rolled_out(deployments: &Api<Deployment>, name: &str) -> Result<()> {
    poll_until(
        &format!("Deployment {name} to be rolled out and Available"),
        READY,
        || async {
            let deployment = deployments.get(name).await?;
            Ok(rolled_out(&deployment).then_some(()))
        },
    )
    .await
}

/// Names of the pods matching `selector`, terminating ones included.
async fn pod_names(pods: &Api<Pod>, selector: &str) -> Result<BTreeSet<String>> {
    Ok(pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .iter()
        .map(|pod| pod.name_any())
        .collect())
}

/// Writes every pod's log in the namespace to the artifacts folder (for a failed run).
async fn save_pod_logs(pods: &Api<Pod>, namespace: &str) {
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return;
    };
    let Ok(dir) = artifacts_dir() else { return };
    for pod in list.items {
        let name = pod.name_any();
        if let Ok(log) = pods.logs(&name, &LogParams::default()).await {
            let _ = std::fs::write(dir.join(format!("helm-{namespace}-{name}.log")), log);
        }
    }
}

/// One person editing `FILE` through the gateway, reconnecting (with the same client id, as a
/// browser tab does) whenever the connection drops: each tick appends `tick N;` and waits for
/// the acknowledgement, resending only what the agent has not applied.
struct Editor {
    gateway: Arc<Gateway>,
    id: String,
    token: String,
    client_id: String,
    ws: Option<Ws>,
    reconnects: u32,
    ticks: u64,
}

impl Editor {
    async fn connection(&mut self) -> Result<&mut Ws> {
        if self.ws.is_none() {
            let deadline = Instant::now() + Duration::from_secs(60);
            let ws = loop {
                match self
                    .gateway
                    .join(&self.id, &self.token, &self.client_id)
                    .await
                {
                    Ok(ws) => break ws,
                    Err(error) if Instant::now() < deadline => {
                        eprintln!("editor: joining failed ({error:#}); retrying");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Err(error) => return Err(error.context("rejoining within 60 s")),
                }
            };
            self.reconnects += 1;
            self.ws = Some(ws);
        }
        self.ws.as_mut().context("connected")
    }

    /// One attempt at tick `seq`: Ok once the agent has it.
    async fn try_tick(&mut self, seq: u64) -> Result<()> {
        let client_id = self.client_id.clone();
        let ws = self.connection().await?;
        let document = open(ws).await?;
        if document["last_seq"]
            .as_u64()
            .is_some_and(|last| last >= seq)
        {
            return Ok(());
        }
        let text = document["text"].as_str().context("text")?.to_owned();
        let rev = document["rev"].as_u64().context("rev")?;
        let op = append_op(&text, &format!("tick {seq};"));
        send(
            ws,
            json!({"type": "op", "file": FILE, "base_rev": rev, "seq": seq, "op": op}),
        )
        .await?;
        recv_where(ws, "op", Duration::from_secs(10), |op| {
            op["client_id"] == client_id.as_str() && op["seq"] == seq
        })
        .await?;
        send(ws, json!({"type": "close", "file": FILE})).await?;
        Ok(())
    }

    async fn tick(&mut self) -> Result<()> {
        let seq = self.ticks + 1;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.try_tick(seq).await {
                Ok(()) => break,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("editor: tick {seq} interrupted ({error:#}); reconnecting");
                    self.ws = None;
                }
                Err(error) => return Err(error.context(format!("tick {seq}"))),
            }
        }
        self.ticks = seq;
        Ok(())
    }

    /// Ticks every 300 ms until `stop`, then once more.
    async fn run(mut self, stop: Arc<AtomicBool>) -> Result<Self> {
        while !stop.load(Ordering::SeqCst) {
            self.tick().await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.tick().await?;
        Ok(self)
    }
}

#[tokio::test]
async fn helm_install_serves_sessions_survives_upgrade_and_uninstalls_cleanly() -> Result<()> {
    let env = TestEnv::from_env()?;
    let client = env.kube_client().await?;
    let namespace = TestNamespace::create(&client, "e2e-helm").await?;
    let ns = namespace.name().to_owned();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let result = install_use_upgrade_uninstall(&env, &client, &ns).await;
    eprintln!("helm e2e: {:.1?} in all", started.elapsed());
    if result.is_err() {
        save_pod_logs(&pods, &ns).await;
        return result;
    }
    namespace.delete().await
}

async fn install_use_upgrade_uninstall(env: &TestEnv, client: &Client, ns: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let step = Instant::now();
    let lap = |what: &str| eprintln!("helm e2e: {what} at {:.1?}", step.elapsed());

    // The stores: a database of this test's own in the cluster's PostgreSQL, and a Redis
    // database number; their URLs as pods reach them, in the Secret e2e.yaml names.
    let database = format!("huddle_{}", ns.replace('-', "_"));
    psql(&env.database_url, &format!("CREATE DATABASE {database}"))?;
    let database_url = with_database(&env.database_url, &database)?;
    let pod_database_url =
        with_database(&TestEnv::var("HUDDLE_TEST_POD_DATABASE_URL")?, &database)?;
    let pod_redis_url = format!("{}/{REDIS_DB}", TestEnv::var("HUDDLE_TEST_POD_REDIS_URL")?);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let stores: Secret = serde_json::from_value(json!({
        "metadata": {"name": STORES_SECRET},
        "stringData": {"database-url": pod_database_url, "redis-url": pod_redis_url},
    }))?;
    secrets.create(&PostParams::default(), &stores).await?;

    // ---- helm install: the operator and both gateway replicas become Available.
    let helm = Helm::new(ns)?;
    helm.run(&[
        "install",
        RELEASE,
        CHART,
        "-f",
        VALUES,
        "--wait",
        "--timeout",
        "120s",
    ])
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let gateway_name = format!("{RELEASE}-gateway");
    let operator_name = format!("{RELEASE}-operator");
    wait_rolled_out(&deployments, &operator_name).await?;
    wait_rolled_out(&deployments, &gateway_name).await?;
    let gateway_deployment = deployments.get(&gateway_name).await?;
    assert_eq!(
        gateway_deployment
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas),
        Some(2),
        "e2e.yaml asks for two gateway replicas"
    );
    for (name, image_var) in [
        (&gateway_name, "HUDDLE_TEST_GATEWAY_IMAGE"),
        (&operator_name, "HUDDLE_TEST_OPERATOR_IMAGE"),
    ] {
        let image = deployments.get(name).await?.spec.and_then(|s| {
            s.template
                .spec
                .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
        });
        assert_eq!(
            image,
            Some(TestEnv::var(image_var)?),
            "{name} runs the locally built image"
        );
    }
    lap("installed, operator and gateways Available");

    // Through the gateway Service's ClusterIP (kube-proxy), with the public Host header.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let cluster_ip = services
        .get(&gateway_name)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the gateway Service has no ClusterIP")?;
    let gateway = Arc::new(Gateway {
        addr: SocketAddr::new(cluster_ip.parse()?, 80),
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?,
    });
    let health = gateway.get(DOMAIN, "/healthz").send().await?;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await?, "ok");
    // The landing page is the web UI's build in the gateway image (the gateway's built-in
    // fallback page loads no assets), and its assets load.
    let landing = gateway.get(DOMAIN, "/").send().await?.text().await?;
    let asset = landing
        .split("assets/")
        .nth(1)
        .and_then(|rest| rest.split(['"', '\'']).next())
        .with_context(|| format!("the landing page is not the built UI: {landing:.300}"))?;
    let asset = gateway
        .get(DOMAIN, &format!("/assets/{asset}"))
        .send()
        .await?;
    assert_eq!(asset.status(), 200, "{} from the landing page", asset.url());

    // ---- a session through the REST API, with the admin token the chart generated.
    let chart_secret = secrets.get(RELEASE).await?;
    let admin = String::from_utf8(
        chart_secret
            .data
            .as_ref()
            .and_then(|d| d.get("admin-token"))
            .context("the chart Secret has no admin-token")?
            .0
            .clone(),
    )?;
    let response = gateway
        .post("/api/sessions")
        .bearer_auth(&admin)
        .json(&json!({
            "owner": "Ada",
            "ports": [{"port": PORT, "visibility": "public"}],
        }))
        .send()
        .await?;
    let status = response.status();
    let created: Value = response.json().await?;
    ensure!(
        status == 201,
        "POST /api/sessions answered {status}: {created}"
    );
    let id = created["id"].as_str().context("id")?.to_owned();
    let link_token = |key: &str| -> Result<String> {
        Ok(created[key]
            .as_str()
            .and_then(|link| link.split("token=").nth(1))
            .with_context(|| format!("no token in {key}"))?
            .to_owned())
    };
    let ada = link_token("ownerLink")?;
    assert_eq!(
        created["ports"][0]["url"],
        format!("http://port-{PORT}-{id}.{DOMAIN}/"),
        "the forwarded port's URL"
    );

    // The Session resource, and its pod running the agent image.
    let sessions: Api<Session> = Api::namespaced(client.clone(), ns);
    let session = sessions.get(&id).await?;
    assert_eq!(session.spec.owner.as_deref(), Some("Ada"));
    assert_eq!(session.spec.state, SessionState::Running);
    gateway.wait_ready(&id, &ada).await?;
    let pod_name = names::workspace_object_name(&id);
    let pod = pods.get(&pod_name).await?;
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert_eq!(
        pod.spec.as_ref().map(|s| s.containers[0].image.clone()),
        Some(Some(env.agent_image.clone()))
    );
    let first_pod_uid = pod.uid().context("pod uid")?;
    poll_until("the Session to report Running", READY, || async {
        let status = sessions.get(&id).await?.status;
        Ok(status
            .is_some_and(|s| s.phase == Some(SessionPhase::Running))
            .then_some(()))
    })
    .await?;
    lap("session created, pod Running");

    // ---- two people: Ada (owner) and Bob, who opens the editor invite.
    let invite = link_token("editorLink")?;
    let redeemed = gateway
        .get(DOMAIN, &format!("/s/{id}/?token={invite}&name=Bob"))
        .send()
        .await?;
    assert_eq!(
        redeemed.status(),
        303,
        "opening an invite sets a cookie and redirects"
    );
    let bob = redeemed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(cookie_value)
        .context("the invite gave no session cookie")?;
    let mut ada_ws = gateway.join(&id, &ada, "ada-tab").await?;
    let mut bob_ws = gateway.join(&id, &bob, "bob-tab").await?;
    send(&mut ada_ws, json!({"type": "create_file", "path": FILE})).await?;
    recv(&mut bob_ws, "file_changed", Duration::from_secs(15)).await?;
    let ada_doc = open(&mut ada_ws).await?;
    let bob_doc = open(&mut bob_ws).await?;
    assert_eq!(ada_doc["text"], "");
    assert_eq!(bob_doc["rev"], ada_doc["rev"]);
    let rev = ada_doc["rev"].as_u64().context("rev")?;
    send(
        &mut ada_ws,
        json!({"type": "op", "file": FILE, "base_rev": rev, "seq": 1, "op": [FIRST_TEXT]}),
    )
    .await?;
    let ack = recv(&mut ada_ws, "op", Duration::from_secs(15)).await?;
    let seen_by_bob = recv(&mut bob_ws, "op", Duration::from_secs(15)).await?;
    assert_eq!(
        seen_by_bob["op"],
        json!([FIRST_TEXT]),
        "Bob sees Ada's edit"
    );
    assert_eq!(seen_by_bob["client_id"], "ada-tab");
    assert_eq!(seen_by_bob["rev"], ack["rev"]);
    assert_eq!(ack["rev"], rev + 1);
    lap("two people joined, an edit reached the other");

    // ---- the forwarded port: Ada starts a web server in the shared terminal; its URL answers
    // through the gateway with the file she just typed (written back to disk by the agent).
    send(
        &mut ada_ws,
        json!({"type": "terminal_open", "cols": 80, "rows": 24}),
    )
    .await?;
    let terminal = recv(&mut ada_ws, "terminal_opened", Duration::from_secs(15)).await?;
    let terminal = terminal["id"].as_u64().context("terminal id")?;
    send(
        &mut ada_ws,
        json!({"type": "terminal_input", "id": terminal,
               "data": format!("busybox httpd -p {PORT} -h /workspace\n")}),
    )
    .await?;
    let port_host = format!("port-{PORT}-{id}.{DOMAIN}");
    poll_until(
        "the forwarded port to serve the file",
        Duration::from_secs(30),
        || async {
            let response = gateway.get(&port_host, &format!("/{FILE}")).send().await?;
            Ok((response.status() == 200 && response.text().await? == FIRST_TEXT).then_some(()))
        },
    )
    .await?;
    // An undeclared port of the same session is not forwarded.
    let undeclared = gateway
        .get(&format!("port-3001-{id}.{DOMAIN}"), "/")
        .send()
        .await?;
    assert_eq!(
        undeclared.status(),
        404,
        "an undeclared port is not forwarded"
    );
    drop(ada_ws);
    drop(bob_ws);
    lap("forwarded port answered");

    // ---- hibernate through the API: the snapshot is in PostgreSQL, then the pod goes.
    let response = gateway
        .post(&format!("/api/sessions/{id}/hibernate"))
        .bearer_auth(&ada)
        .send()
        .await?;
    let status = response.status();
    let hibernated: Value = response.json().await?;
    ensure!(status == 200, "hibernate answered {status}: {hibernated}");
    let snapshot_id = hibernated["snapshot"]["id"]
        .as_i64()
        .context("snapshot id")?;
    let stored = psql(
        &database_url,
        &format!(
            "SELECT size_bytes, complete FROM snapshots WHERE session_id = '{id}' AND id = {snapshot_id}"
        ),
    )?;
    let (size, complete) = stored.split_once('|').context("no snapshot row")?;
    ensure!(
        complete == "t" && size.parse::<u64>()? > 0,
        "the snapshot in PostgreSQL: {stored}"
    );
    assert_eq!(
        sessions.get(&id).await?.spec.state,
        SessionState::Hibernated
    );
    poll_until("the hibernated session's pod to go", READY, || async {
        Ok(pods.get_opt(&pod_name).await?.is_none().then_some(()))
    })
    .await?;
    lap("hibernated: snapshot stored, pod gone");

    // ---- wake: a new pod restores the snapshot from the gateway's internal Service, which it
    // finds by its cluster.local name (CoreDNS) and reaches through its ClusterIP (kube-proxy).
    let response = gateway
        .post(&format!("/api/sessions/{id}/wake"))
        .bearer_auth(&ada)
        .send()
        .await?;
    assert_eq!(response.status(), 202, "wake");
    gateway.wait_ready(&id, &ada).await?;
    let woken = pods.get(&pod_name).await?;
    assert_ne!(woken.uid(), Some(first_pod_uid), "woken in a new pod");
    let mut ada_ws = gateway.join(&id, &ada, "ada-tab-2").await?;
    let document = open(&mut ada_ws).await?;
    assert_eq!(
        document["text"], FIRST_TEXT,
        "the file survived hibernation"
    );
    assert_eq!(
        document["rev"], ack["rev"],
        "at the revision it was saved at"
    );
    send(&mut ada_ws, json!({"type": "close", "file": FILE})).await?;
    drop(ada_ws);
    lap("woken with the file intact");

    // ---- helm upgrade with a changed value: the gateway rolls (new pods, one at a time) while
    // Ada keeps editing; her client rejoins when its gateway goes, and nothing is lost.
    let old_gateways = pod_names(&pods, "app.kubernetes.io/component=gateway").await?;
    let session_pod_uid = woken.uid();
    let stop = Arc::new(AtomicBool::new(false));
    let editor = Editor {
        gateway: gateway.clone(),
        id: id.clone(),
        token: ada.clone(),
        client_id: "ada-upgrade".into(),
        ws: None,
        reconnects: 0,
        ticks: 0,
    };
    let editing = tokio::spawn(editor.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    helm.run(&[
        "upgrade",
        RELEASE,
        CHART,
        "-f",
        VALUES,
        "--set",
        "gateway.apiRate=30",
        "--wait",
        "--timeout",
        "120s",
    ])
    .await?;
    wait_rolled_out(&deployments, &gateway_name).await?;
    // The rollout is complete once the old replicas are gone, connections and all.
    poll_until("the old gateway pods to be gone", READY, || async {
        let now = pod_names(&pods, "app.kubernetes.io/component=gateway").await?;
        Ok(now.is_disjoint(&old_gateways).then_some(now))
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    let editor = editing.await??;
    let env_of = |deployment: &Deployment, name: &str| {
        deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers[0].env.as_ref())
            .and_then(|env| env.iter().find(|e| e.name == name))
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env_of(&deployments.get(&gateway_name).await?, "HUDDLE_API_RATE").as_deref(),
        Some("30"),
        "the upgrade changed the gateway"
    );
    ensure!(
        editor.ticks >= 3,
        "only {} edits during the upgrade",
        editor.ticks
    );
    eprintln!(
        "helm e2e: {} edits during the rollout, {} connection(s) (the first included)",
        editor.ticks, editor.reconnects
    );
    // The session was not dropped: same pod, still Running, every edit there exactly once.
    let session_pod = pods.get(&pod_name).await?;
    assert_eq!(
        session_pod.uid(),
        session_pod_uid,
        "the session pod was not replaced"
    );
    assert_eq!(sessions.get(&id).await?.spec.state, SessionState::Running);
    let mut ada_ws = gateway.join(&id, &ada, "ada-after").await?;
    let document = open(&mut ada_ws).await?;
    let ticks: String = (1..=editor.ticks).map(|n| format!("tick {n};")).collect();
    assert_eq!(
        document["text"].as_str(),
        Some(format!("{FIRST_TEXT}{ticks}").as_str()),
        "every edit made during the upgrade is there, once"
    );
    drop(ada_ws);
    lap("upgraded: gateways rolled, session kept");

    // ---- and a browser: Chromium opens Ada's link through the same Service, sees the text the
    // WebSocket clients made, and types at its end; the agent has it.
    let expected = format!("{FIRST_TEXT}{ticks}");
    let typed = " and a browser was here";
    browser_edit(
        &format!("http://{DOMAIN}/s/{id}/?token={ada}"),
        &gateway.addr.ip().to_string(),
        &expected,
        typed,
    )
    .await?;
    let mut ada_ws = gateway.join(&id, &ada, "ada-after-browser").await?;
    let document = open(&mut ada_ws).await?;
    assert_eq!(
        document["text"].as_str(),
        Some(format!("{expected}{typed}").as_str()),
        "the browser's edit reached the agent"
    );
    drop(ada_ws);
    lap("a browser edited through the installed gateway");

    // ---- delete the session as its owner, then helm uninstall.
    let response = gateway
        .http
        .delete(gateway.url(&format!("/api/sessions/{id}")))
        .header("host", DOMAIN)
        .bearer_auth(&ada)
        .send()
        .await?;
    assert_eq!(response.status(), 204, "DELETE /api/sessions/{id}");
    poll_until("the Session and its pod to go", READY, || async {
        let gone =
            sessions.get_opt(&id).await?.is_none() && pods.get_opt(&pod_name).await?.is_none();
        Ok(gone.then_some(()))
    })
    .await?;
    helm.run(&["uninstall", RELEASE, "--wait", "--timeout", "120s"])
        .await?;

    // What is left in the namespace, once the chart's pods have stopped: every namespaced kind
    // the API server lists (Events aside: they expire by themselves).
    let expected: BTreeSet<String> = [
        // kept on purpose (helm.sh/resource-policy: keep): the master key and admin token
        format!("Secret/{RELEASE}"),
        // the user's own, made before the install
        format!("Secret/{STORES_SECRET}"),
        // what Kubernetes puts in every namespace
        "ConfigMap/kube-root-ca.crt".to_owned(),
        "ServiceAccount/default".to_owned(),
    ]
    .into();
    let remaining = poll_until(
        "the namespace to hold only what is kept",
        Duration::from_secs(90),
        || async {
            let remaining = namespace_contents(client, ns).await?;
            Ok((remaining == expected).then_some(remaining))
        },
    )
    .await
    .with_context(|| format!("expected only {expected:?} after helm uninstall"));
    let remaining = match remaining {
        Ok(remaining) => remaining,
        Err(error) => {
            let now = namespace_contents(client, ns).await.unwrap_or_default();
            bail!("{error:#}; left: {now:?}");
        }
    };
    eprintln!("helm e2e: left in namespace {ns} after uninstall: {remaining:?}");
    let kept = secrets.get(RELEASE).await?;
    assert_eq!(
        kept.annotations()
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    // The CRD stays (Helm never deletes a chart's CRDs), and so does the data in PostgreSQL.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    ensure!(
        crds.get_opt("sessions.huddle.dev").await?.is_some(),
        "the Session CRD is gone"
    );
    let rows = psql(
        &database_url,
        &format!(
            "SELECT (SELECT count(*) FROM sessions WHERE id = '{id}' AND deleted_at IS NOT NULL) \
             || ' ' || (SELECT count(*) FROM snapshots WHERE session_id = '{id}') \
             || ' ' || (SELECT count(*) FROM audit_events WHERE session_id = '{id}')"
        ),
    )?;
    let counts: Vec<u64> = rows
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("counts {rows:?}"))?;
    ensure!(
        counts.len() == 3 && counts[0] == 1 && counts[1] >= 1 && counts[2] >= 1,
        "PostgreSQL keeps the deleted session's row, its snapshots and audit events: {rows}"
    );
    eprintln!(
        "helm e2e: kept in PostgreSQL database {database}: the session (deleted), {} snapshot(s), {} audit event(s)",
        counts[1], counts[2]
    );
    lap("uninstalled");

    psql(
        &env.database_url,
        &format!("DROP DATABASE {database} WITH (FORCE)"),
    )?;
    Ok(())
}

/// Every object in namespace `ns`, as `Kind/name`, over every namespaced kind the API server
/// lists, Events excepted.
async fn namespace_contents(client: &Client, ns: &str) -> Result<BTreeSet<String>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut found = BTreeSet::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if capabilities.scope != Scope::Namespaced
                || !capabilities.supports_operation(verbs::LIST)
                || resource.kind == "Event"
            {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            for object in api.list(&ListParams::default()).await? {
                found.insert(format!("{}/{}", resource.kind, object.name_any()));
            }
        }
    }
    Ok(found)
}

/// Runs web/tests/cluster-browser.mjs: headless Chromium (through playwright-core) opens
/// `link`, with the domain mapped to `ip`, checks the file shows `expected`, types `typed` at its
/// end and waits until the agent acknowledged it.
async fn browser_edit(link: &str, ip: &str, expected: &str, typed: &str) -> Result<()> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../web/tests/cluster-browser.mjs"
    );
    let screenshot = artifacts_dir()?.join("ui-screens");
    std::fs::create_dir_all(&screenshot)?;
    let output = tokio::process::Command::new("node")
        .arg(script)
        .env("HUDDLE_LINK", link)
        .env("HUDDLE_MAP", format!("{DOMAIN}={ip}"))
        .env("HUDDLE_FILE", FILE)
        .env("HUDDLE_EXPECT", expected)
        .env("HUDDLE_TYPE", typed)
        .env(
            "HUDDLE_SCREENSHOT",
            screenshot.join("helm-installed-browser.png"),
        )
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .context("the browser did not finish within 120 s")??;
    ensure!(
        output.status.success(),
        "the browser edit failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
