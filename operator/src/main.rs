//! `huddle-operator`: turns `Session` resources into running workspace pods.
//!
//! One replica at a time leads (a Lease); the others wait, serving `/healthz` and `/metrics`,
//! and take over within a lease duration when the leader goes away.

mod config;
mod context;
mod controller;
mod leader;
mod metrics;
mod reconcile;
mod resources;
mod status;
mod turn;

use anyhow::Context as _;
use clap::Parser as _;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::Config;
use crate::context::Context;
use crate::leader::{LeaderElector, LeaseTiming};
use crate::metrics::Metrics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    huddle_telemetry::init();
    let config = Config::parse();
    match config.master_key().context("HUDDLE_TOKEN_KEY")? {
        Some(_) => info!("session pods get their own signing keys"),
        None => tracing::warn!(
            "HUDDLE_TOKEN_KEY is not set: session pods get no key and nobody can join them"
        ),
    }
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration found (in-cluster or kubeconfig)")?;

    let metrics = Metrics::new();
    let listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics server to {}", config.metrics_addr))?;
    info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    tokio::spawn(metrics::serve(listener, metrics.clone(), shutdown_signal()));

    let identity = config.identity.clone().unwrap_or_else(default_identity);
    let elector = LeaderElector::new(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        identity.clone(),
        LeaseTiming::default(),
    );
    info!(%identity, lease = %config.lease_name, "waiting to lead");
    let mut leadership = tokio::select! {
        leadership = elector.acquire() => leadership.context("acquiring the leader lease")?,
        () = shutdown_signal() => return Ok(()),
    };
    metrics.set_leader(true);
    info!(%identity, "leading; starting the Session controller");

    let ctx = Arc::new(Context::new(
        client,
        config,
        metrics.clone(),
        Some(identity),
    ));
    tokio::select! {
        () = controller::run(ctx, shutdown_signal()) => {
            info!("shutting down");
            leadership.release().await;
            Ok(())
        }
        () = leadership.lost() => {
            // Another replica may already be reconciling: stop at once rather than race it.
            metrics.set_leader(false);
            error!("lost the leader lease; exiting");
            std::process::exit(1);
        }
    }
}

/// Without `POD_NAME` (outside a cluster), host name and process id tell replicas apart.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "huddle-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
