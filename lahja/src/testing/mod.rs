//! Scenario tests: write a cross-process scenario once, run it in every mix
//! of processes and endpoint kinds (feature `testing`).
//!
//! A [`Scenario`] has named roles; each [`Role`] is a list of steps (serve,
//! connect, wait, broadcast, request, expect an error, checkpoint...). Each
//! step knows how to run on an async [`crate::Endpoint`] and on a
//! [`crate::blocking::Endpoint`], so [`Scenario::run`] can play it:
//!
//! * [`Mode::InProcess`]: every role an async endpoint in this process;
//! * [`Mode::Processes`]: every role a process of its own, async;
//! * [`Mode::Mixed`]: every role a process of its own, alternating async
//!   and blocking endpoints, run twice so each role is played both ways.
//! * [`Mode::Zenoh`] (feature `zenoh`): every role a process of its own,
//!   alternating async and blocking endpoints, all on one zenoh bus (TCP
//!   on 127.0.0.1, multicast off) and talking only over it: `connect_to`
//!   waits for the zenoh peer instead of opening a socket. A bus is a
//!   mesh, so every role is every other's peer.
//! * [`Mode::SocketAndZenoh`] (feature `zenoh`): every role but the last
//!   on the bus; the last connects by socket. Pairs on the bus use zenoh,
//!   the others sockets, so some endpoints have peers of both kinds.
//!
//! A role process is the test binary itself, re-run with
//! `--exact <test name>`: the test builds the same scenario, sees that it
//! is playing one role (environment variables say which) and plays only
//! that. So the name given to [`Scenario::new`] must be the test's name.
//!
//! ```no_run
//! use lahja::testing::{Mode, Scenario};
//! use lahja::Event;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! struct Ping(u32);
//!
//! // #[test]
//! fn ping_from_client_to_server() {
//!     let mut scenario = Scenario::new("ping_from_client_to_server");
//!     scenario.role("server").serve().wait_for(Ping(1));
//!     scenario
//!         .role("client")
//!         .run()
//!         .connect_to("server")
//!         .wait_until_subscribed::<Ping>("server")
//!         .broadcast(Ping(1));
//!     scenario.run(Mode::Processes);
//! }
//! # ping_from_client_to_server();
//! ```
//!
//! Every step has a timeout (10 s by default) whose message names the
//! scenario, the role and the step. At the end, each role waits until every
//! role is done before it stops, so no role loses a peer it still needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod groups;
mod role;

pub use role::Role;
use role::{Action, Step, StepResult, show};

use crate::{ConnectionConfig, blocking};

const ROLE_VAR: &str = "LAHJA_SCENARIO_ROLE";
const DIR_VAR: &str = "LAHJA_SCENARIO_DIR";
const FLAVOR_VAR: &str = "LAHJA_SCENARIO_FLAVOR";
/// The zenoh plan of a role process: `BUS|HUB LOCATOR|ROLE,ROLE...`.
const ZENOH_VAR: &str = "LAHJA_SCENARIO_ZENOH";

/// How to play a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every role an async endpoint, all in this process.
    InProcess,
    /// Every role a process of its own, with an async endpoint.
    Processes,
    /// Every role a process of its own, alternating async and blocking
    /// endpoints; played twice, starting with each kind.
    Mixed,
    /// Every role a process of its own (alternating async and blocking
    /// endpoints), all on one zenoh bus and talking only over it.
    #[cfg(feature = "zenoh")]
    Zenoh,
    /// Every role a process of its own; all but the last on one zenoh bus,
    /// the last connecting by socket.
    #[cfg(feature = "zenoh")]
    SocketAndZenoh,
}

/// Which kind of endpoint a role plays with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// [`crate::Endpoint`] on a tokio runtime.
    Async,
    /// [`crate::blocking::Endpoint`] on a plain thread.
    Blocking,
}

/// What a step sees: the scenario's folder and how to reach other roles.
#[derive(Debug, Clone)]
pub struct Ctx {
    dir: PathBuf,
    /// The role playing.
    me: String,
    /// The bus, in the zenoh modes.
    zenoh: Option<ZenohPlan>,
}

/// Which roles are on the zenoh bus, and where its first role listens.
#[derive(Debug, Clone)]
struct ZenohPlan {
    bus: String,
    hub: String,
    roles: Vec<String>,
}

impl ZenohPlan {
    fn from_env() -> Option<ZenohPlan> {
        let plan = std::env::var(ZENOH_VAR).ok()?;
        let mut parts = plan.splitn(3, '|');
        let (bus, hub, roles) = (parts.next()?, parts.next()?, parts.next()?);
        Some(ZenohPlan {
            bus: bus.to_owned(),
            hub: hub.to_owned(),
            roles: roles.split(',').map(str::to_owned).collect(),
        })
    }

    fn to_env(&self) -> String {
        format!("{}|{}|{}", self.bus, self.hub, self.roles.join(","))
    }
}

impl Ctx {
    /// The connection config of `role`.
    pub fn config(&self, role: &str) -> ConnectionConfig {
        ConnectionConfig::new(role, self.dir.join(format!("{role}.sock")))
    }

    /// Whether this role and `role` are peers on the zenoh bus (so
    /// `connect_to` waits for the peer instead of opening a socket).
    pub fn on_zenoh_with(&self, role: &str) -> bool {
        self.zenoh.as_ref().is_some_and(|plan| {
            plan.roles
                .iter()
                .filter(|r| **r == self.me || *r == role)
                .count()
                == 2
        })
    }

    /// The config this role joins the bus with, if it is on one.
    #[cfg(feature = "zenoh")]
    fn zenoh_config(&self) -> Option<crate::zenoh::ZenohConfig> {
        let plan = self.zenoh.as_ref().filter(|p| p.roles.contains(&self.me))?;
        let config = crate::zenoh::ZenohConfig::new(&plan.bus);
        Some(if plan.roles[0] == self.me {
            config.listen(&plan.hub)
        } else {
            config.connect(&plan.hub).listen("tcp/127.0.0.1:0")
        })
    }

    fn mark(&self, checkpoint: &str) -> PathBuf {
        self.dir.join(format!("checkpoint-{checkpoint}"))
    }
}

/// A cross-process scenario: named roles, each a list of steps.
#[derive(Debug)]
pub struct Scenario {
    test: String,
    roles: Vec<Role>,
    step_timeout: Duration,
}

impl Scenario {
    /// A scenario played by the test named `test` (its name as
    /// `cargo test -- --exact` takes it: role processes re-run it).
    pub fn new(test: impl Into<String>) -> Scenario {
        Scenario {
            test: test.into(),
            roles: Vec::new(),
            step_timeout: Duration::from_secs(10),
        }
    }

    /// How long one step may take before the scenario fails (default 10 s).
    pub fn step_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.step_timeout = timeout;
        self
    }

    /// Adds a role named `name` and returns it to add its steps.
    pub fn role(&mut self, name: &str) -> &mut Role {
        self.roles.push(Role {
            name: name.to_owned(),
            steps: Vec::new(),
        });
        self.roles.last_mut().expect("just pushed")
    }

    /// Plays the scenario; panics with the role and step at the first
    /// failure (this is a test tool). In a role process it plays only
    /// that role.
    pub fn run(&self, mode: Mode) {
        if let Err(failure) = self.try_run(mode) {
            panic!("{failure}");
        }
    }

    /// Like [`run`](Self::run), but returns the failure. In a role process
    /// a failure still panics: that is how the role's test fails and the
    /// parent hears of it.
    pub fn try_run(&self, mode: Mode) -> Result<(), String> {
        if let Ok(role) = std::env::var(ROLE_VAR) {
            let dir = PathBuf::from(std::env::var(DIR_VAR).expect("scenario dir"));
            let flavor = match std::env::var(FLAVOR_VAR).as_deref() {
                Ok("blocking") => Flavor::Blocking,
                _ => Flavor::Async,
            };
            self.play_role(&role, &dir, flavor, ZenohPlan::from_env());
            return Ok(());
        }
        let alternate = |i: usize| {
            if i.is_multiple_of(2) {
                Flavor::Async
            } else {
                Flavor::Blocking
            }
        };
        match mode {
            Mode::InProcess => self.play_in_process(),
            Mode::Processes => self.play_processes(|_| Flavor::Async, None),
            #[cfg(feature = "zenoh")]
            Mode::Zenoh => self.play_processes(alternate, Some(self.zenoh_plan(self.roles.len()))),
            #[cfg(feature = "zenoh")]
            Mode::SocketAndZenoh => {
                let on_bus = self.roles.len().saturating_sub(1).max(1);
                self.play_processes(|_| Flavor::Async, Some(self.zenoh_plan(on_bus)))
            }
            Mode::Mixed => {
                self.play_processes(alternate, None)?;
                self.play_processes(|i| alternate(i + 1), None)
            }
        }
    }

    /// A bus of its own for the first `roles` roles; the first listens on
    /// a free port of 127.0.0.1.
    #[cfg(feature = "zenoh")]
    fn zenoh_plan(&self, roles: usize) -> ZenohPlan {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        ZenohPlan {
            bus: format!("scenario-{}-{port}", std::process::id()),
            hub: format!("tcp/127.0.0.1:{port}"),
            roles: self.role_names().into_iter().take(roles).collect(),
        }
    }

    fn fresh_dir(&self) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lahja-scenario-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scenario folder");
        dir
    }

    fn role_named(&self, name: &str) -> &Role {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("scenario {}: no role {name}", self.test))
    }

    fn play_in_process(&self) -> Result<(), String> {
        let dir = self.fresh_dir();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let failures: Vec<String> = runtime.block_on(async {
            let tasks: Vec<_> = self
                .roles
                .iter()
                .map(|role| {
                    let ctx = Ctx {
                        dir: dir.clone(),
                        me: role.name.clone(),
                        zenoh: None,
                    };
                    let (role, all) = (role.clone(), self.role_names());
                    let (test, timeout) = (self.test.clone(), self.step_timeout);
                    tokio::spawn(async move { play_async(&test, &role, &ctx, &all, timeout).await })
                })
                .collect();
            let mut failures = Vec::new();
            for task in tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(failure)) => failures.push(failure),
                    Err(panic) => failures.push(format!("a role panicked: {panic}")),
                }
            }
            failures
        });
        let _ = std::fs::remove_dir_all(&dir);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }

    fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.name.clone()).collect()
    }

    fn play_processes(
        &self,
        flavor_of: impl Fn(usize) -> Flavor,
        zenoh: Option<ZenohPlan>,
    ) -> Result<(), String> {
        let dir = self.fresh_dir();
        let exe = std::env::current_exe().expect("test binary");
        let mut children = Vec::new();
        for (i, role) in self.roles.iter().enumerate() {
            let flavor = match flavor_of(i) {
                Flavor::Async => "async",
                Flavor::Blocking => "blocking",
            };
            let mut command = std::process::Command::new(&exe);
            if let Some(plan) = &zenoh {
                command.env(ZENOH_VAR, plan.to_env());
            }
            let child = command
                .args(["--exact", &self.test, "--nocapture", "--test-threads", "1"])
                .env(ROLE_VAR, &role.name)
                .env(DIR_VAR, &dir)
                .env(FLAVOR_VAR, flavor)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start a role process");
            children.push((format!("{} ({flavor})", role.name), child));
        }
        let mut failures = Vec::new();
        for (label, child) in children {
            let output = child.wait_with_output().expect("role process");
            let stdout = String::from_utf8_lossy(&output.stdout);
            // A role process runs exactly the one test; make sure it did.
            if !output.status.success() || !stdout.contains("1 passed") {
                failures.push(format!(
                    "role {label} failed:\n{stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("scenario {}:\n{}", self.test, failures.join("\n")))
        }
    }

    fn play_role(&self, name: &str, dir: &Path, flavor: Flavor, zenoh: Option<ZenohPlan>) {
        let role = self.role_named(name);
        let ctx = Ctx {
            dir: dir.to_owned(),
            me: name.to_owned(),
            zenoh,
        };
        let all = self.role_names();
        let result = match flavor {
            Flavor::Async => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(play_async(&self.test, role, &ctx, &all, self.step_timeout)),
            Flavor::Blocking => play_blocking(&self.test, role, &ctx, &all, self.step_timeout),
        };
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
}

fn failure(test: &str, role: &str, index: usize, step: &Step, what: &str) -> String {
    format!(
        "scenario {test}: role {role}, step {} ({}): {what}",
        index + 1,
        step.label
    )
}

/// The steps that end every role: say it is done, wait for the others.
fn finish(role: &str, all: &[String]) -> (String, Vec<String>) {
    (
        format!("done-{role}"),
        all.iter().map(|r| format!("done-{r}")).collect(),
    )
}

async fn play_async(
    test: &str,
    role: &Role,
    ctx: &Ctx,
    all: &[String],
    timeout: Duration,
) -> StepResult {
    let mut endpoint: Option<crate::Endpoint> = None;
    for (index, step) in role.steps.iter().enumerate() {
        let fail = |what: &str| failure(test, &role.name, index, step, what);
        let outcome = match &step.action {
            Action::Start { serve } => {
                let started = if *serve {
                    crate::Endpoint::serve(ctx.config(&role.name)).await
                } else {
                    crate::Endpoint::run(role.name.clone()).await
                };
                match started {
                    Ok(ep) => {
                        #[cfg(feature = "zenoh")]
                        if let Some(config) = ctx.zenoh_config() {
                            ep.join_zenoh(config).await.map_err(|e| show(&e))?;
                        }
                        endpoint = Some(ep);
                        Ok(())
                    }
                    Err(e) => Err(show(&e)),
                }
            }
            Action::Do { run_async, .. } => {
                let ep = endpoint
                    .as_ref()
                    .ok_or_else(|| fail("no endpoint: start with serve() or run()"))?;
                match tokio::time::timeout(timeout, run_async(ep, ctx)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                }
            }
        };
        outcome.map_err(|what| fail(&what))?;
    }
    let (mine, everyone) = finish(&role.name, all);
    std::fs::write(ctx.mark(&mine), b"").map_err(|e| e.to_string())?;
    let waiting = async {
        for mark in everyone {
            while !ctx.mark(&mark).exists() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let waited = tokio::time::timeout(timeout, waiting).await;
    if let Some(endpoint) = endpoint {
        endpoint.stop().await;
    }
    waited.map_err(|_| {
        format!(
            "scenario {test}: role {}: the other roles did not finish",
            role.name
        )
    })
}

fn play_blocking(
    test: &str,
    role: &Role,
    ctx: &Ctx,
    all: &[String],
    timeout: Duration,
) -> StepResult {
    let mut endpoint: Option<blocking::Endpoint> = None;
    for (index, step) in role.steps.iter().enumerate() {
        let fail = |what: &str| failure(test, &role.name, index, step, what);
        let outcome = match &step.action {
            Action::Start { serve } => {
                let started = if *serve {
                    blocking::Endpoint::serve(ctx.config(&role.name))
                } else {
                    blocking::Endpoint::run(role.name.clone())
                };
                match started {
                    Ok(ep) => {
                        #[cfg(feature = "zenoh")]
                        if let Some(config) = ctx.zenoh_config() {
                            ep.join_zenoh(config).map_err(|e| show(&e))?;
                        }
                        endpoint = Some(ep);
                        Ok(())
                    }
                    Err(e) => Err(show(&e)),
                }
            }
            Action::Do { run_blocking, .. } => {
                let ep = endpoint
                    .clone()
                    .ok_or_else(|| fail("no endpoint: start with serve() or run()"))?;
                // Run the step on a thread of its own so its timeout holds.
                let (done, outcome) = std::sync::mpsc::channel();
                let (step_fn, step_ctx) = (run_blocking.clone(), ctx.clone());
                std::thread::spawn(move || {
                    let _ = done.send(step_fn(&ep, &step_ctx));
                });
                outcome
                    .recv_timeout(timeout)
                    .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
            }
        };
        outcome.map_err(|what| fail(&what))?;
    }
    let (mine, everyone) = finish(&role.name, all);
    std::fs::write(ctx.mark(&mine), b"").map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + timeout;
    for mark in everyone {
        while !ctx.mark(&mark).exists() {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "scenario {test}: role {}: the other roles did not finish",
                    role.name
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some(endpoint) = endpoint {
        endpoint.stop();
    }
    Ok(())
}
