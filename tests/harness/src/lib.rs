//! The harness for Huddle's end-to-end tests: brings up and talks to the local Kubernetes test
//! cluster (etcd, kube-apiserver, controller-manager, scheduler, kubelet) and the real Postgres
//! and Redis the tests run against, and hands the tests clients for them.
//!
//! `tests/cluster/cluster.sh up` starts the cluster inside its own network namespace and writes
//! the environment this crate reads; tests run inside that namespace through
//! `tests/cluster/cluster.sh exec -- cargo test`, which is what `scripts/test` does.

mod crd;
mod env;
mod namespace;
mod process;
mod wait;

pub use crd::install_crd;
pub use env::TestEnv;
pub use namespace::TestNamespace;
pub use process::{Process, artifacts_dir, free_local_addr, workspace_binary};
pub use wait::{poll_until, wait_for_object_gone};
