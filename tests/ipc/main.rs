//! Tests across real processes, as one test binary (see
//! `tests/local/main.rs` for which tests have binaries of their own, and
//! why).

#[path = "../support/mod.rs"]
mod support;

mod basics;
mod broadcast;
mod connect;
mod examples;
mod flow_control;
mod groups;
mod handshake;
mod hardening;
mod lifecycle;
mod mesh;
mod perf_benchmark_smoke;
mod request;
mod schema;
mod shared_memory;
mod subscriptions;
#[cfg(feature = "zenoh")]
mod zenoh;
#[cfg(feature = "zenoh")]
mod zenoh_netns;
