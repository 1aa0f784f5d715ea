//! Prometheus metrics of the operator, served as OpenMetrics text on `GET /metrics`.
//!
//! Every metric is prefixed `huddle_operator_`. [`Metrics`] is a bundle of cheap handles (each
//! metric is an `Arc` inside), so `main`, the controller and the HTTP server each hold a clone
//! of the same set.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format, which is what `encode` produces.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets for the time from a Session's creation to its `Ready` condition: an image already on
/// the node is ready in about a second, a cold pull or a slow scheduler takes minutes.
const SESSION_READY_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    /// A short, low-cardinality error kind, such as `kube` or `invalid_spec`.
    error: String,
}

/// The operator's metrics. Clone it freely: clones share the same counters.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciliations: Counter,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histogram,
    session_ready: Histogram,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the `huddle_operator_` prefix.
    pub fn new() -> Self {
        let reconciliations = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        // 5 ms … ~10 s: a reconcile is a handful of API calls.
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let session_ready = Histogram::new(SESSION_READY_BUCKETS);
        let leader = Gauge::default();

        let mut registry = Registry::with_prefix("huddle_operator");
        registry.register(
            "reconciliations",
            "Reconciliations started",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error kind",
            reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconciliation",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register_with_unit(
            "session_ready",
            "Time from a Session's creation to its Ready condition",
            Unit::Seconds,
            session_ready.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica holds the leader lease, else 0",
            leader.clone(),
        );

        Self {
            registry: Arc::new(registry),
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            session_ready,
            leader,
        }
    }

    /// Counts a reconciliation and times it until the returned guard is dropped.
    #[must_use = "the reconciliation is timed until this guard is dropped"]
    pub fn reconcile_started(&self) -> ReconcileTimer {
        self.reconciliations.inc();
        ReconcileTimer {
            histogram: self.reconcile_duration.clone(),
            started: Instant::now(),
        }
    }

    /// Counts a failed reconciliation. `kind` must come from a small fixed set (it is a label).
    pub fn reconcile_failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                error: kind.to_owned(),
            })
            .inc();
    }

    /// Records how long a Session took from creation to `Ready`.
    pub fn observe_ready(&self, seconds: f64) {
        self.session_ready.observe(seconds);
    }

    /// Sets the `leader` gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// All metrics in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an error here could only come from a metric's own
        // encoder, and a partial page is still more useful to a scraper than none.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "could not encode the metrics");
        }
        text
    }
}

/// Times one reconciliation; observes `huddle_operator_reconcile_duration_seconds` when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Serves `GET /metrics` and `GET /healthz` on `listener` until `shutdown` resolves.
///
/// The caller binds the listener, so it can report bind errors itself and a test can bind
/// port 0 and learn the real address.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(get_metrics))
        .route("/healthz", get(get_healthz))
        .with_state(metrics)
}

async fn get_metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], metrics.encode())
}

async fn get_healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[test]
    fn encode_reports_what_was_recorded() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_started());
        drop(metrics.clone().reconcile_started());
        metrics.reconcile_failed("kube");
        metrics.reconcile_failed("kube");
        metrics.reconcile_failed("invalid_spec");
        metrics.observe_ready(3.0);
        metrics.set_leader(true);

        let text = metrics.encode();
        for expected in [
            "# TYPE huddle_operator_reconciliations counter",
            "huddle_operator_reconciliations_total 2",
            "huddle_operator_reconcile_errors_total{error=\"kube\"} 2",
            "huddle_operator_reconcile_errors_total{error=\"invalid_spec\"} 1",
            "# UNIT huddle_operator_reconcile_duration_seconds seconds",
            "huddle_operator_reconcile_duration_seconds_count 2",
            "huddle_operator_session_ready_seconds_sum 3.0",
            "huddle_operator_session_ready_seconds_count 1",
            "huddle_operator_session_ready_seconds_bucket{le=\"2.0\"} 0",
            "huddle_operator_session_ready_seconds_bucket{le=\"5.0\"} 1",
            "huddle_operator_session_ready_seconds_bucket{le=\"600.0\"} 1",
            "huddle_operator_leader 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");

        metrics.set_leader(false);
        assert!(metrics.encode().contains("huddle_operator_leader 0"));
    }

    /// Sends one HTTP/1.1 request over a fresh connection and returns the whole response.
    async fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_metrics_and_health_over_http() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_started());
        metrics.set_leader(true);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, metrics, async {
            let _ = stopped.await;
        }));

        let response = http_get(addr, "/metrics").await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{head}"
        );
        assert!(
            body.contains("huddle_operator_reconciliations_total 1"),
            "{body}"
        );
        assert!(body.contains("huddle_operator_leader 1"), "{body}");

        let response = http_get(addr, "/healthz").await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("\r\n\r\nok"), "{response}");

        let response = http_get(addr, "/nothing-here").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
