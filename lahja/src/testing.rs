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

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{BroadcastConfig, ConnectionConfig, Error, Event, Request, blocking};

const ROLE_VAR: &str = "LAHJA_SCENARIO_ROLE";
const DIR_VAR: &str = "LAHJA_SCENARIO_DIR";
const FLAVOR_VAR: &str = "LAHJA_SCENARIO_FLAVOR";

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
}

impl Ctx {
    /// The connection config of `role`.
    pub fn config(&self, role: &str) -> ConnectionConfig {
        ConnectionConfig::new(role, self.dir.join(format!("{role}.sock")))
    }

    fn mark(&self, checkpoint: &str) -> PathBuf {
        self.dir.join(format!("checkpoint-{checkpoint}"))
    }
}

type StepResult = Result<(), String>;
type AsyncStep = Arc<
    dyn for<'a> Fn(
            &'a crate::Endpoint,
            &'a Ctx,
        ) -> Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>
        + Send
        + Sync,
>;
type BlockingStep = Arc<dyn Fn(&blocking::Endpoint, &Ctx) -> StepResult + Send + Sync>;

#[derive(Clone)]
enum Action {
    /// Create the endpoint: serving at the role's socket, or only running.
    Start { serve: bool },
    Do {
        run_async: AsyncStep,
        run_blocking: BlockingStep,
    },
}

#[derive(Clone)]
struct Step {
    label: String,
    action: Action,
}

/// One named participant of a scenario: a list of steps.
#[derive(Clone)]
pub struct Role {
    name: String,
    steps: Vec<Step>,
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<&str> = self.steps.iter().map(|s| s.label.as_str()).collect();
        f.debug_struct("Role")
            .field("name", &self.name)
            .field("steps", &steps)
            .finish()
    }
}

fn show(error: &Error) -> String {
    format!("{error:?}")
}

impl Role {
    fn push(
        &mut self,
        label: String,
        run_async: AsyncStep,
        run_blocking: BlockingStep,
    ) -> &mut Self {
        self.steps.push(Step {
            label,
            action: Action::Do {
                run_async,
                run_blocking,
            },
        });
        self
    }

    /// Starts the role's endpoint listening at its socket.
    pub fn serve(&mut self) -> &mut Self {
        self.steps.push(Step {
            label: "serve".into(),
            action: Action::Start { serve: true },
        });
        self
    }

    /// Starts the role's endpoint without listening.
    pub fn run(&mut self) -> &mut Self {
        self.steps.push(Step {
            label: "run".into(),
            action: Action::Start { serve: false },
        });
        self
    }

    /// Connects to `role` (which serves).
    pub fn connect_to(&mut self, role: &str) -> &mut Self {
        let (a, b) = (role.to_owned(), role.to_owned());
        self.push(
            format!("connect to {role}"),
            Arc::new(move |ep, ctx| {
                let config = ctx.config(&a);
                Box::pin(async move {
                    ep.connect_to_endpoints([config])
                        .await
                        .map_err(|e| show(&e))
                })
            }),
            Arc::new(move |ep, ctx| {
                ep.connect_to_endpoints([ctx.config(&b)])
                    .map_err(|e| show(&e))
            }),
        )
    }

    /// Connects to `role` and expects the attempt to fail as `expected` says.
    pub fn expect_connect_error(&mut self, role: &str, expected: fn(&Error) -> bool) -> &mut Self {
        let (a, b) = (role.to_owned(), role.to_owned());
        self.push(
            format!("connect to {role}, expecting an error"),
            Arc::new(move |ep, ctx| {
                let config = ctx.config(&a);
                Box::pin(
                    async move { expect_error(ep.connect_to_endpoints([config]).await, expected) },
                )
            }),
            Arc::new(move |ep, ctx| {
                expect_error(ep.connect_to_endpoints([ctx.config(&b)]), expected)
            }),
        )
    }

    /// Waits until `role` is connected to this one.
    pub fn wait_until_connected_to(&mut self, role: &str) -> &mut Self {
        let (a, b) = (role.to_owned(), role.to_owned());
        self.push(
            format!("wait until connected to {role}"),
            Arc::new(move |ep, _| {
                let a = a.clone();
                Box::pin(async move { ep.wait_until_connected_to(&a).await.map_err(|e| show(&e)) })
            }),
            Arc::new(move |ep, _| ep.wait_until_connected_to(&b).map_err(|e| show(&e))),
        )
    }

    /// Waits until `role` subscribes to `E`.
    pub fn wait_until_subscribed<E: Event>(&mut self, role: &str) -> &mut Self {
        let (a, b) = (role.to_owned(), role.to_owned());
        self.push(
            format!("wait until {role} subscribes to {}", E::NAME),
            Arc::new(move |ep, _| {
                let a = a.clone();
                Box::pin(async move {
                    ep.wait_until_endpoint_subscribed_to::<E>(&a)
                        .await
                        .map_err(|e| show(&e))
                })
            }),
            Arc::new(move |ep, _| {
                ep.wait_until_endpoint_subscribed_to::<E>(&b)
                    .map_err(|e| show(&e))
            }),
        )
    }

    /// Broadcasts `event` (default config).
    pub fn broadcast<E: Event>(&mut self, event: E) -> &mut Self {
        self.broadcast_with(event, BroadcastConfig::default())
    }

    /// Broadcasts `event` routed by `config`.
    pub fn broadcast_with<E: Event>(&mut self, event: E, config: BroadcastConfig) -> &mut Self {
        let (e1, c1, e2, c2) = (event.clone(), config.clone(), event, config);
        self.push(
            format!("broadcast {}", E::NAME),
            Arc::new(move |ep, _| {
                let (event, config) = (e1.clone(), c1.clone());
                Box::pin(
                    async move { ep.broadcast_with(event, config).await.map_err(|e| show(&e)) },
                )
            }),
            Arc::new(move |ep, _| {
                ep.broadcast_with(e2.clone(), c2.clone())
                    .map_err(|e| show(&e))
            }),
        )
    }

    /// Broadcasts `event` and expects it to fail as `expected` says.
    pub fn expect_broadcast_error<E: Event>(
        &mut self,
        event: E,
        expected: fn(&Error) -> bool,
    ) -> &mut Self {
        let (e1, e2) = (event.clone(), event);
        self.push(
            format!("broadcast {}, expecting an error", E::NAME),
            Arc::new(move |ep, _| {
                let event = e1.clone();
                Box::pin(async move { expect_error(ep.broadcast(event).await, expected) })
            }),
            Arc::new(move |ep, _| expect_error(ep.broadcast(e2.clone()), expected)),
        )
    }

    /// Waits for the next `E` and checks it equals `expected`.
    pub fn wait_for<E: Event + PartialEq + fmt::Debug>(&mut self, expected: E) -> &mut Self {
        let (x1, x2) = (expected.clone(), expected);
        self.push(
            format!("wait for {}", E::NAME),
            Arc::new(move |ep, _| {
                let expected = x1.clone();
                Box::pin(async move { check_equal(ep.wait_for::<E>().await, &expected) })
            }),
            Arc::new(move |ep, _| check_equal(ep.wait_for::<E>(), &x2)),
        )
    }

    /// Waits for one request of type `R` and answers it with `answer`.
    pub fn serve_one_request<R: Request>(&mut self, answer: fn(R) -> R::Response) -> &mut Self {
        // Subscribed from here on, so that requesters can wait for it.
        self.subscribe_requests::<R>(answer)
    }

    fn subscribe_requests<R: Request>(&mut self, answer: fn(R) -> R::Response) -> &mut Self {
        self.push(
            format!("serve one {}", R::NAME),
            Arc::new(move |ep, _| {
                Box::pin(async move {
                    let mut requests = ep.stream_requests::<R>();
                    let request = requests
                        .next()
                        .await
                        .ok_or("stopped before a request came")?;
                    let response = answer(R::clone(&request));
                    request.respond(response).await.map_err(|e| show(&e))
                })
            }),
            Arc::new(move |ep, _| {
                let mut requests = ep.stream_requests::<R>();
                let request = requests
                    .try_next()
                    .map_err(|e| show(&e))?
                    .ok_or("stopped before a request came")?;
                let response = answer(R::clone(&request));
                request.respond(response).map_err(|e| show(&e))
            }),
        )
    }

    /// Sends `request` and checks the answer equals `expected`.
    pub fn request<R>(&mut self, request: R, expected: R::Response) -> &mut Self
    where
        R: Request,
        R::Response: PartialEq + fmt::Debug,
    {
        let (r1, x1, r2, x2) = (request.clone(), expected.clone(), request, expected);
        self.push(
            format!("request {}", R::NAME),
            Arc::new(move |ep, _| {
                let (request, expected) = (r1.clone(), x1.clone());
                Box::pin(async move { check_equal(ep.request(request).await, &expected) })
            }),
            Arc::new(move |ep, _| check_equal(ep.request(r2.clone()), &x2)),
        )
    }

    /// Sends `request` and expects it to fail as `expected` says.
    pub fn expect_request_error<R: Request>(
        &mut self,
        request: R,
        expected: fn(&Error) -> bool,
    ) -> &mut Self {
        let (r1, r2) = (request.clone(), request);
        self.push(
            format!("request {}, expecting an error", R::NAME),
            Arc::new(move |ep, _| {
                let request = r1.clone();
                Box::pin(async move { expect_error(ep.request(request).await, expected) })
            }),
            Arc::new(move |ep, _| expect_error(ep.request(r2.clone()), expected)),
        )
    }

    /// Marks `checkpoint` as reached, for other roles' [`Role::wait_checkpoint`].
    pub fn checkpoint(&mut self, checkpoint: &str) -> &mut Self {
        let (a, b) = (checkpoint.to_owned(), checkpoint.to_owned());
        self.push(
            format!("checkpoint {checkpoint}"),
            Arc::new(move |_, ctx| {
                let mark = ctx.mark(&a);
                Box::pin(async move { std::fs::write(mark, b"").map_err(|e| e.to_string()) })
            }),
            Arc::new(move |_, ctx| std::fs::write(ctx.mark(&b), b"").map_err(|e| e.to_string())),
        )
    }

    /// Waits until some role marks `checkpoint`.
    pub fn wait_checkpoint(&mut self, checkpoint: &str) -> &mut Self {
        let (a, b) = (checkpoint.to_owned(), checkpoint.to_owned());
        self.push(
            format!("wait for checkpoint {checkpoint}"),
            Arc::new(move |_, ctx| {
                let mark = ctx.mark(&a);
                Box::pin(async move {
                    while !mark.exists() {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Ok(())
                })
            }),
            Arc::new(move |_, ctx| {
                let mark = ctx.mark(&b);
                while !mark.exists() {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(())
            }),
        )
    }
}

fn expect_error<T>(result: crate::Result<T>, expected: fn(&Error) -> bool) -> StepResult {
    match result {
        Err(error) if expected(&error) => Ok(()),
        Err(error) => Err(format!("expected another error, got {error:?}")),
        Ok(_) => Err("expected an error, got Ok".into()),
    }
}

fn check_equal<T: PartialEq + fmt::Debug>(result: crate::Result<T>, expected: &T) -> StepResult {
    match result {
        Ok(value) if value == *expected => Ok(()),
        other => Err(format!("expected Ok({expected:?}), got {other:?}")),
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
            self.play_role(&role, &dir, flavor);
            return Ok(());
        }
        match mode {
            Mode::InProcess => self.play_in_process(),
            Mode::Processes => self.play_processes(|_| Flavor::Async),
            Mode::Mixed => {
                self.play_processes(|i| {
                    if i % 2 == 0 {
                        Flavor::Async
                    } else {
                        Flavor::Blocking
                    }
                })?;
                self.play_processes(|i| {
                    if i % 2 == 0 {
                        Flavor::Blocking
                    } else {
                        Flavor::Async
                    }
                })
            }
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
                    let (role, ctx, all) =
                        (role.clone(), Ctx { dir: dir.clone() }, self.role_names());
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

    fn play_processes(&self, flavor_of: impl Fn(usize) -> Flavor) -> Result<(), String> {
        let dir = self.fresh_dir();
        let exe = std::env::current_exe().expect("test binary");
        let mut children = Vec::new();
        for (i, role) in self.roles.iter().enumerate() {
            let flavor = match flavor_of(i) {
                Flavor::Async => "async",
                Flavor::Blocking => "blocking",
            };
            let child = std::process::Command::new(&exe)
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

    fn play_role(&self, name: &str, dir: &Path, flavor: Flavor) {
        let role = self.role_named(name);
        let ctx = Ctx {
            dir: dir.to_owned(),
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
                started.map(|ep| endpoint = Some(ep)).map_err(|e| show(&e))
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
                started.map(|ep| endpoint = Some(ep)).map_err(|e| show(&e))
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
