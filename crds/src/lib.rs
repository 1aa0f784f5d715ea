//! Huddle's Kubernetes-facing types, shared by the operator, the gateway and the tests.
//!
//! This crate will hold the `Session` custom resource (a kube `CustomResource` with a schemars
//! schema) and a `crdgen` binary that prints its YAML. For now it holds [`names`]: the labels,
//! ports and paths that more than one part of Huddle must agree on, kept in one place so the
//! operator's probes, the agent's routes and the gateway's lookups cannot drift apart.

pub mod names;
