//! [`Role`] steps for process groups and gathered requests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Role;
use super::role::show;
use crate::{BroadcastConfig, Event, Request};

/// How often a wait for a group's members re-checks besides on changes.
const RECHECK: Duration = Duration::from_millis(20);

impl Role {
    /// Joins process group `group`.
    pub fn join_group(&mut self, group: &str) -> &mut Self {
        let (a, b) = (group.to_owned(), group.to_owned());
        self.push(
            format!("join group {group}"),
            Arc::new(move |ep, _| {
                let a = a.clone();
                Box::pin(async move { ep.join_group(&a).await.map_err(|e| show(&e)) })
            }),
            Arc::new(move |ep, _| ep.join_group(&b).map_err(|e| show(&e))),
        )
    }

    /// Leaves process group `group`.
    pub fn leave_group(&mut self, group: &str) -> &mut Self {
        let (a, b) = (group.to_owned(), group.to_owned());
        self.push(
            format!("leave group {group}"),
            Arc::new(move |ep, _| {
                let a = a.clone();
                Box::pin(async move { ep.leave_group(&a).await.map_err(|e| show(&e)) })
            }),
            Arc::new(move |ep, _| ep.leave_group(&b).map_err(|e| show(&e))),
        )
    }

    /// Waits until `group` has at least `members` connected members.
    pub fn wait_until_group_has_members(&mut self, group: &str, members: usize) -> &mut Self {
        let (a, b) = (group.to_owned(), group.to_owned());
        self.push(
            format!("wait until group {group} has {members} members"),
            Arc::new(move |ep, _| {
                let a = a.clone();
                Box::pin(async move {
                    let wait = ep.wait_until_group_has_members(&a, members);
                    wait.await.map_err(|e| show(&e))
                })
            }),
            Arc::new(move |ep, _| {
                ep.wait_until_group_has_members(&b, members)
                    .map_err(|e| show(&e))
            }),
        )
    }

    /// Waits until some member of `group` subscribes to `E`.
    pub fn wait_until_group_subscribed<E: Event>(&mut self, group: &str) -> &mut Self {
        let (a, b) = (group.to_owned(), group.to_owned());
        self.push(
            format!("wait until group {group} subscribes to {}", E::NAME),
            Arc::new(move |ep, _| {
                let a = a.clone();
                Box::pin(async move {
                    let wait = ep.wait_until_group_subscribed_to::<E>(&a);
                    wait.await.map_err(|e| show(&e))
                })
            }),
            Arc::new(move |ep, _| {
                ep.wait_until_group_subscribed_to::<E>(&b)
                    .map_err(|e| show(&e))
            }),
        )
    }

    /// Waits until the connected members of `group` are exactly `members`
    /// (this endpoint first if it is one, then the others by name): for a
    /// member that leaves as well as one that joins.
    pub fn wait_until_group_members(&mut self, group: &str, members: &[&str]) -> &mut Self {
        let expected: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        let a = (group.to_owned(), expected.clone());
        let b = (group.to_owned(), expected);
        self.push(
            format!("wait until group {group} is {members:?}"),
            Arc::new(move |ep, _| {
                let (group, expected) = a.clone();
                Box::pin(async move {
                    while ep.group_members(&group) != expected {
                        // Re-checked after every change, and now and then:
                        // a change just before the wait began is not missed.
                        let change = ep.wait_until_endpoint_subscriptions_change();
                        if let Ok(Err(error)) = tokio::time::timeout(RECHECK, change).await {
                            return Err(show(&error));
                        }
                    }
                    Ok(())
                })
            }),
            Arc::new(move |ep, _| {
                while ep.group_members(&b.0) != b.1 {
                    if !ep.is_running() {
                        return Err("stopped while waiting".into());
                    }
                    std::thread::sleep(RECHECK);
                }
                Ok(())
            }),
        )
    }

    /// Sends `request` routed by `config` with
    /// [`request_all_with`](crate::Endpoint::request_all_with) and checks
    /// that the answers are exactly `expected`: one `(origin, response)`
    /// per target, in any order.
    pub fn request_all<R>(
        &mut self,
        request: R,
        config: BroadcastConfig,
        expected: &[(&str, R::Response)],
    ) -> &mut Self
    where
        R: Request,
        R::Response: PartialEq + fmt::Debug,
    {
        let mut expected: Vec<(String, R::Response)> = expected
            .iter()
            .map(|(origin, answer)| (origin.to_string(), answer.clone()))
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let a = (request.clone(), config.clone(), expected.clone());
        let b = (request, config, expected);
        self.push(
            format!("request {} from every target", R::NAME),
            Arc::new(move |ep, _| {
                let (request, config, expected) = a.clone();
                Box::pin(async move {
                    let mut answers = ep.request_all_with(request, config).map_err(|e| show(&e))?;
                    let mut got = Vec::new();
                    while let Some(item) = answers.next().await {
                        got.push(item);
                    }
                    same_answers::<R>(got, &expected)
                })
            }),
            Arc::new(move |ep, _| {
                let (request, config, expected) = b.clone();
                let answers = ep.request_all_with(request, config).map_err(|e| show(&e))?;
                same_answers::<R>(answers.collect(), &expected)
            }),
        )
    }
}

fn same_answers<R>(
    got: Vec<(Arc<str>, crate::Result<R::Response>)>,
    expected: &[(String, R::Response)],
) -> Result<(), String>
where
    R: Request,
    R::Response: PartialEq + fmt::Debug,
{
    let mut answers = Vec::with_capacity(got.len());
    for (origin, answer) in got {
        match answer {
            Ok(answer) => answers.push((origin.to_string(), answer)),
            Err(error) => return Err(format!("{origin} answered {}", show(&error))),
        }
    }
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    if answers == expected {
        Ok(())
    } else {
        Err(format!("expected answers {expected:?}, got {answers:?}"))
    }
}
