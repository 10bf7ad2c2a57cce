//! In-process tests, as one test binary.
//!
//! Every test binary links the whole crate and tokio, which dominates CI
//! time on two cores, so tests share binaries by area:
//!
//! - `local` (this one): endpoints within one process, the blocking
//!   endpoint.
//! - `ipc`: across real processes (the `lahja-*` helper binaries), the
//!   hardening tests, the examples and the benchmark smoke test.
//!
//! A test keeps a binary of its own only when it needs the process to
//! itself:
//!
//! - `churn`, `ipc_fd_leak`: count this process's descriptors and tasks.
//! - `load`: measures this process's RSS.
//! - `registry_duplicate`: links two types with one ID, which fails every
//!   endpoint in the binary.
//! - `registry`: asserts default wire names, which begin with the test
//!   binary's crate name.
//! - `hostile_input`: installs a global panic counter and log capture.
//! - `runtime_dir`: sets `XDG_RUNTIME_DIR`, which is process-wide.
//! - `common_scenarios`: re-runs its own binary per role with
//!   `--exact <test name>`, so its test names must stay as they are.
//! - `ui`: trybuild compiles its cases itself.

#[path = "../support/mod.rs"]
mod support;

mod basics;
mod blocking;
mod broadcast;
mod groups;
mod lifecycle;
mod request;
mod subscriptions;
