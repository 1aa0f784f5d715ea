//! `huddle-gateway`: the front door of Huddle, a pingora proxy. See `main.rs` for how the parts
//! are put together and `README.md` for how to run it.
//!
//! | module | idea |
//! |---|---|
//! | [`route`] | which destination a Host and path mean |
//! | [`auth`] | tokens, cookies, port grants, the admin token |
//! | [`proxy`] | the pingora `ProxyHttp` implementation |
//! | [`api`] | the gateway's own HTTP server: REST API, pages, snapshot store |
//! | [`sessions`] | lookups, create, wake, hibernate, delete, port visibility |
//! | [`runtime`] | where agents run: Kubernetes, local processes, Docker/podman |
//! | [`registry`] | what replicas share: Redis, or memory on one machine |
//! | [`activity`] | activity and connections seen through this replica |
//! | [`gc`] | the idle sweep |
//! | [`watch`] | acting on changes announced by any replica |
//! | [`store`] | Postgres or SQLite: sessions, participants, ports, snapshots, audit |

pub mod activity;
pub mod api;
pub mod auth;
pub mod config;
pub mod gc;
pub mod pages;
pub mod proxy;
pub mod ratelimit;
pub mod registry;
pub mod revoke;
pub mod route;
pub mod runtime;
pub mod sessions;
pub mod store;
pub mod tunnel;
pub mod watch;
