//! The Docker launcher against a real engine: podman's Docker API service with the agent image,
//! as `tests/podman/podman.sh up` starts it inside the test network namespace (scripts/test
//! does). Real agent containers start, answer, write into their bind-mounted workspace as the
//! unprivileged user, and are stopped and removed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use bollard::Docker;
use huddle_gateway::runtime::{DockerLauncher, LaunchSpec, Launched, Launcher, RuntimeError};
use huddle_gateway::store::{SessionId, new_session_id};
use huddle_protocol::Role;
use huddle_protocol::token::{Claims, TokenKey};

const AGENT_UID: u32 = 65532;
const WAIT: Duration = Duration::from_secs(30);

fn docker_host() -> String {
    match std::env::var("HUDDLE_TEST_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host,
        _ => panic!(
            "HUDDLE_TEST_DOCKER_HOST is not set. These tests need a Docker API engine with the agent \
             image. With the test cluster up (tests/cluster/cluster.sh up) and the images built \
             (tests/images/build-images.sh), run\n    \
             tests/cluster/cluster.sh exec -- bash tests/podman/podman.sh up\n\
             then the tests inside the namespace with the variables it prints:\n    \
             tests/cluster/cluster.sh exec -- bash -c 'eval \"$(bash tests/podman/podman.sh env)\" \
             && cargo test -p huddle-gateway --test docker_launcher'\n\
             (scripts/test does all of this)."
        ),
    }
}

fn image() -> String {
    std::env::var("HUDDLE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "localhost/huddle-agent:dev".into())
}

/// A raw client for looking at containers from outside the launcher.
async fn engine(host: &str) -> Result<Docker> {
    let docker = Docker::connect_with_host(host).context("connecting to the engine")?;
    Ok(docker.negotiate_version().await?)
}

fn token(key: &str, id: &SessionId) -> Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 300;
    let key = TokenKey::new(key.as_bytes())?;
    Ok(key.sign(&Claims {
        sid: id.to_string(),
        name: "Docker test".into(),
        role: Role::Owner,
        exp,
        uid: "docker-test".into(),
    }))
}

fn spec(workspace: &Path) -> Result<LaunchSpec> {
    let id = new_session_id()?;
    Ok(LaunchSpec {
        token_key: format!("docker-launcher-test-key-{id}"),
        id,
        workspace: workspace.to_path_buf(),
        files: BTreeMap::new(),
    })
}

async fn wait_healthy(http: &reqwest::Client, launched: Launched) -> Result<()> {
    let url = format!("http://{}/healthz", launched.agent);
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
        match answer {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
            _ if Instant::now() > deadline => {
                bail!("{url} did not answer 200 within {WAIT:?}: {answer:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Effective capabilities, user and no-new-privileges flag of a process on this machine.
fn process_status(pid: i64) -> Result<BTreeMap<String, String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is the engine on this machine?)"))?;
    Ok(status
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect())
}

async fn exercise(
    launcher: &DockerLauncher,
    docker: &Docker,
    http: &reqwest::Client,
) -> Result<()> {
    let folder = tempfile::tempdir()?;
    let workspace = folder.path().join("workspace");
    // As LocalRuntime does for a new session: its starting files, written by the gateway.
    std::fs::create_dir_all(workspace.join("src"))?;
    std::fs::write(workspace.join("README.md"), "# from the template\n")?;
    std::fs::write(workspace.join("src/main.rs"), "fn main() {}\n")?;
    let a = spec(&workspace)?;
    let name = format!("huddle-{}", a.id);

    let started = Instant::now();
    let launched = launcher.start(&a).await?;
    let created_in = started.elapsed();
    wait_healthy(http, launched).await?;
    eprintln!(
        "agent container {name} at {}: started in {created_in:?}, healthy after {:?}",
        launched.agent,
        started.elapsed()
    );
    ensure!(
        launched.agent.ip() == launched.host,
        "agent {launched:?} is not on its host address"
    );
    ensure!(
        launched.agent.port() == 8080,
        "agent port {}",
        launched.agent.port()
    );
    ensure!(
        !launched.host.is_loopback(),
        "a container has its own address, got {}",
        launched.host
    );
    ensure!(
        launcher.is_running(&a.id).await,
        "is_running says no for a started agent"
    );

    // How the engine sees it.
    let inspect = docker.inspect_container(&name, None).await?;
    let config = inspect.config.context("no Config")?;
    ensure!(
        config.user.as_deref() == Some("65532:65532"),
        "user {:?}",
        config.user
    );
    ensure!(
        config.image.as_deref() == Some(image().as_str()),
        "image {:?}",
        config.image
    );
    let labels = config.labels.unwrap_or_default();
    ensure!(
        labels.get("app.kubernetes.io/name").map(String::as_str) == Some("huddle"),
        "labels {labels:?}"
    );
    ensure!(
        labels.get("huddle.dev/session") == Some(&a.id.to_string()),
        "labels {labels:?}"
    );
    let env = config.env.unwrap_or_default();
    for wanted in [
        "HUDDLE_AGENT_ADDR=0.0.0.0:8080".to_owned(),
        format!("HUDDLE_SESSION_ID={}", a.id),
        "HUDDLE_WORKSPACE=/workspace".to_owned(),
        format!("HUDDLE_TOKEN_KEY={}", a.token_key),
    ] {
        ensure!(
            env.contains(&wanted),
            "{wanted} missing from the environment"
        );
    }
    let host_config = inspect.host_config.context("no HostConfig")?;
    ensure!(host_config.privileged != Some(true), "privileged");
    ensure!(
        host_config.cap_add.unwrap_or_default().is_empty(),
        "capabilities added"
    );
    // Docker reports ["ALL"]; podman every capability it dropped, by name.
    let dropped = host_config.cap_drop.unwrap_or_default();
    ensure!(
        ["ALL", "NET_RAW", "CAP_NET_RAW"]
            .iter()
            .any(|cap| dropped.iter().any(|d| d == cap)),
        "capabilities not dropped: {dropped:?}"
    );
    ensure!(
        host_config.pids_limit.is_some_and(|limit| limit > 0),
        "no pids limit"
    );
    ensure!(
        host_config.memory.is_some_and(|limit| limit > 0),
        "no memory limit"
    );

    // How the kernel sees it: the agent process has no capabilities at all, runs as the
    // workspace user, and cannot gain privileges.
    let pid = inspect
        .state
        .and_then(|state| state.pid)
        .context("no pid")?;
    let status = process_status(pid)?;
    for key in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        ensure!(
            status.get(key).map(String::as_str) == Some("0000000000000000"),
            "{key} of the agent is {:?}",
            status.get(key)
        );
    }
    ensure!(
        status
            .get("Uid")
            .is_some_and(|uid| uid.split_whitespace().all(|u| u == "65532")),
        "agent Uid {:?}",
        status.get("Uid")
    );
    ensure!(
        status.get("NoNewPrivs").map(String::as_str) == Some("1"),
        "NoNewPrivs {:?}",
        status.get("NoNewPrivs")
    );

    // The template was handed to the agent's user.
    for path in ["", "README.md", "src", "src/main.rs"] {
        let meta = std::fs::symlink_metadata(workspace.join(path))?;
        ensure!(
            meta.uid() == AGENT_UID && meta.gid() == AGENT_UID,
            "{path:?} owned by {}:{}",
            meta.uid(),
            meta.gid()
        );
    }

    // Through the agent's file routes, into the host folder and back.
    let bearer = token(&a.token_key, &a.id)?;
    let readme = http
        .get(format!("http://{}/files/README.md", launched.agent))
        .bearer_auth(&bearer)
        .send()
        .await?;
    ensure!(
        readme.status().is_success(),
        "GET README.md: {}",
        readme.status()
    );
    ensure!(
        readme.text().await? == "# from the template\n",
        "README.md content"
    );
    let put = http
        .put(format!("http://{}/files/notes/hello.txt", launched.agent))
        .bearer_auth(&bearer)
        .body("written through the agent\n")
        .send()
        .await?;
    ensure!(
        put.status().is_success(),
        "PUT notes/hello.txt: {} {}",
        put.status(),
        put.text().await?
    );
    let written = workspace.join("notes/hello.txt");
    ensure!(
        std::fs::read_to_string(&written)? == "written through the agent\n",
        "file content on the host"
    );
    ensure!(
        std::fs::metadata(&written)?.uid() == AGENT_UID,
        "the agent's file is not owned by {AGENT_UID}"
    );
    let put = http
        .put(format!("http://{}/files/README.md", launched.agent))
        .bearer_auth(&bearer)
        .body("# changed\n")
        .send()
        .await?;
    ensure!(put.status().is_success(), "PUT README.md: {}", put.status());
    ensure!(
        std::fs::read_to_string(workspace.join("README.md"))? == "# changed\n",
        "README.md not changed"
    );
    let wrong_key = token("another-key-that-is-long-enough-0123456789", &a.id)?;
    let refused = http
        .put(format!("http://{}/files/forged.txt", launched.agent))
        .bearer_auth(wrong_key)
        .body("no")
        .send()
        .await?;
    ensure!(
        refused.status() == reqwest::StatusCode::UNAUTHORIZED,
        "forged token: {}",
        refused.status()
    );

    // A second session, for stop_all; then a restart of the first on its existing workspace
    // (as after a gateway restart): the old container is replaced, the files are still there.
    let other = tempfile::tempdir()?;
    let b = spec(other.path())?;
    let launched_b = launcher.start(&b).await?;
    wait_healthy(http, launched_b).await?;
    ensure!(
        launched_b.host != launched.host,
        "two sessions share {}",
        launched.host
    );

    let relaunched = launcher.start(&a).await?;
    wait_healthy(http, relaunched).await?;
    let back = http
        .get(format!("http://{}/files/notes/hello.txt", relaunched.agent))
        .bearer_auth(&bearer)
        .send()
        .await?;
    ensure!(
        back.status().is_success(),
        "GET after restart: {}",
        back.status()
    );
    let listed = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&std::collections::HashMap::from([(
                    "label".to_owned(),
                    vec![format!("huddle.dev/session={}", a.id)],
                )]))
                .build(),
        ))
        .await?;
    ensure!(
        listed.len() == 1,
        "{} containers for one session",
        listed.len()
    );

    // Stop: SIGTERM, the agent exits, the container is removed.
    let stopping = Instant::now();
    launcher.stop(&a.id).await?;
    eprintln!(
        "agent container {name} stopped and removed in {:?}",
        stopping.elapsed()
    );
    ensure!(
        !launcher.is_running(&a.id).await,
        "still running after stop"
    );
    match docker.inspect_container(&name, None).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        other => bail!("container {name} still there after stop: {other:?}"),
    }
    launcher
        .stop(&a.id)
        .await
        .context("stopping a stopped session")?;
    ensure!(
        std::fs::read_to_string(&written).is_ok(),
        "stop removed the workspace files"
    );

    ensure!(launcher.is_running(&b.id).await, "session b not running");
    launcher.stop_all().await;
    ensure!(
        !launcher.is_running(&b.id).await,
        "session b still running after stop_all"
    );
    let left = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&std::collections::HashMap::from([(
                    "label".to_owned(),
                    vec![format!("huddle.dev/session={}", b.id)],
                )]))
                .build(),
        ))
        .await?;
    ensure!(left.is_empty(), "stop_all left {left:?}");
    Ok(())
}

#[tokio::test]
async fn agent_containers_start_serve_their_workspace_and_stop() -> Result<()> {
    let host = docker_host();
    let launcher = DockerLauncher::connect(&host, image()).await?;
    let docker = engine(&host).await?;
    let http = reqwest::Client::new();
    let outcome = exercise(&launcher, &docker, &http).await;
    // Whatever happened, leave no container behind.
    launcher.stop_all().await;
    outcome
}

#[tokio::test]
async fn a_missing_image_or_engine_is_a_clear_launch_error() -> Result<()> {
    let host = docker_host();
    match DockerLauncher::connect("unix:///nonexistent/huddle-test.sock", image()).await {
        Err(RuntimeError::Launch(message)) => {
            ensure!(
                message.contains("/nonexistent/huddle-test.sock"),
                "message: {message}"
            )
        }
        Err(other) => bail!("wrong error for a missing socket: {other}"),
        Ok(_) => bail!("connected to a socket that does not exist"),
    }
    ensure!(
        matches!(
            DockerLauncher::connect("ftp://example", image()).await,
            Err(RuntimeError::Invalid(_))
        ),
        "an unknown scheme is not refused as invalid"
    );

    let launcher =
        DockerLauncher::connect(&host, "localhost/huddle-no-such-image:missing".into()).await?;
    let folder = tempfile::tempdir()?;
    let spec = spec(folder.path())?;
    match launcher.start(&spec).await {
        Err(RuntimeError::Launch(message)) => {
            eprintln!("a missing image: {message}");
            ensure!(
                message.contains("huddle-no-such-image"),
                "message does not name the image: {message}"
            )
        }
        Err(other) => bail!("wrong error for a missing image: {other}"),
        Ok(launched) => {
            launcher.stop_all().await;
            bail!("started {launched:?} from an image that does not exist")
        }
    }
    ensure!(
        !launcher.is_running(&spec.id).await,
        "a failed start left a container"
    );
    Ok(())
}
