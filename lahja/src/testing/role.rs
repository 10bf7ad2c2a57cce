//! [`Role`]: one participant of a scenario, built step by step. Each step
//! is written twice, for an async and for a blocking endpoint.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use crate::{BroadcastConfig, Error, Event, Request, blocking};

pub(super) type StepResult = Result<(), String>;
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
pub(super) enum Action {
    /// Create the endpoint: serving at the role's socket, or only running.
    Start { serve: bool },
    Do {
        run_async: AsyncStep,
        run_blocking: BlockingStep,
    },
}

#[derive(Clone)]
pub(super) struct Step {
    pub(super) label: String,
    pub(super) action: Action,
}

/// One named participant of a scenario: a list of steps.
#[derive(Clone)]
pub struct Role {
    pub(super) name: String,
    pub(super) steps: Vec<Step>,
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

pub(super) fn show(error: &Error) -> String {
    format!("{error:?}")
}

impl Role {
    pub(super) fn push(
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

    /// Connects to `role` (which serves). Two roles on one zenoh bus are
    /// peers already: then this waits until they are connected.
    pub fn connect_to(&mut self, role: &str) -> &mut Self {
        let (a, b) = (role.to_owned(), role.to_owned());
        self.push(
            format!("connect to {role}"),
            Arc::new(move |ep, ctx| {
                let (role, config, on_zenoh) = (a.clone(), ctx.config(&a), ctx.on_zenoh_with(&a));
                Box::pin(async move {
                    let connected = if on_zenoh {
                        ep.wait_until_connected_to(&role).await
                    } else {
                        ep.connect_to_endpoints([config]).await
                    };
                    connected.map_err(|e| show(&e))
                })
            }),
            Arc::new(move |ep, ctx| {
                let connected = if ctx.on_zenoh_with(&b) {
                    ep.wait_until_connected_to(&b)
                } else {
                    ep.connect_to_endpoints([ctx.config(&b)])
                };
                connected.map_err(|e| show(&e))
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

    /// Broadcasts `event` routed by `config` and expects it to fail as
    /// `expected` says.
    pub fn expect_broadcast_error_with<E: Event>(
        &mut self,
        event: E,
        config: BroadcastConfig,
        expected: fn(&Error) -> bool,
    ) -> &mut Self {
        let (a, b) = ((event.clone(), config.clone()), (event, config));
        self.push(
            format!(
                "broadcast {} with {config:?}, expecting an error",
                E::NAME,
                config = b.1
            ),
            Arc::new(move |ep, _| {
                let (event, config) = a.clone();
                Box::pin(
                    async move { expect_error(ep.broadcast_with(event, config).await, expected) },
                )
            }),
            Arc::new(move |ep, _| {
                let (event, config) = b.clone();
                expect_error(ep.broadcast_with(event, config), expected)
            }),
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
