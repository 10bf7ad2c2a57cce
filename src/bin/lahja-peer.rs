//! A scriptable endpoint for cross-process tests: it reads one command per
//! line on stdin and answers each with one line starting `ok` or `err`.
//! Events it receives are printed as they come (`got`, `stream`, ...).
//!
//! Not an example: the integration tests in `tests/ipc/` drive it.

use std::collections::HashMap;

use lahja::{BroadcastConfig, ConnectionConfig, Endpoint, EndpointOptions, Event, Subscription};
use lahja_workspace::events::*;
use lahja_workspace::many;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Everything a command may need to keep alive.
#[derive(Default)]
struct Holders {
    subscriptions: Vec<Subscription>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stalled: Vec<lahja::EventStream<Numbered>>,
    /// Deliveries of the generated types (`many-*` commands).
    many_hits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn config_with(to: Option<&str>) -> BroadcastConfig {
    match to {
        Some(name) => BroadcastConfig::to(name),
        None => BroadcastConfig::default(),
    }
}

/// `key=value` options after the positional words.
fn options(words: &[&str]) -> (Vec<String>, HashMap<String, String>) {
    let mut positional = Vec::new();
    let mut named = HashMap::new();
    for word in words {
        match word.split_once('=') {
            Some((k, v)) => {
                named.insert(k.to_owned(), v.to_owned());
            }
            None => positional.push((*word).to_owned()),
        }
    }
    (positional, named)
}

fn endpoint_options(named: &HashMap<String, String>) -> EndpointOptions {
    let mut options = EndpointOptions::default();
    if let Some(v) = named.get("queue") {
        options.queue_bytes = v.parse().expect("queue=BYTES");
    }
    if let Some(v) = named.get("capacity") {
        options.stream_capacity = v.parse().expect("capacity=N");
    }
    if let Some(v) = named.get("max_frame") {
        options.max_frame_bytes = v.parse().expect("max_frame=BYTES");
    }
    options
}

fn is_subscribed<E: Event>(endpoint: &Endpoint, who: &str) -> bool {
    endpoint.is_endpoint_subscribed_to::<E>(who)
}

async fn wait_subscribed(endpoint: &Endpoint, who: &str, kind: &str) -> lahja::Result<()> {
    match kind {
        "numbered" => {
            endpoint
                .wait_until_endpoint_subscribed_to::<Numbered>(who)
                .await
        }
        "double" => {
            endpoint
                .wait_until_endpoint_subscribed_to::<Double>(who)
                .await
        }
        "who" => {
            endpoint
                .wait_until_endpoint_subscribed_to::<WhoAreYou>(who)
                .await
        }
        "blob" => {
            endpoint
                .wait_until_endpoint_subscribed_to::<Blob>(who)
                .await
        }
        "echo" => {
            endpoint
                .wait_until_endpoint_subscribed_to::<Echo>(who)
                .await
        }
        other => panic!("unknown type {other}"),
    }
}

fn reply<T>(result: lahja::Result<T>, ok: impl FnOnce(T) -> String) {
    match result {
        Ok(value) => println!("ok {}", ok(value)),
        Err(error) => println!("err {error:?}"),
    }
}

#[tokio::main]
async fn main() {
    if std::env::var_os("LAHJA_PEER_ABORT_ON_PANIC").is_some() {
        // A victim of hostile-input tests: any panic, even one lahja would
        // contain, shows as SIGABRT in the exit status.
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut endpoint: Option<Endpoint> = None;
    let mut holders = Holders::default();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&command, rest)) = words.split_first() else {
            continue;
        };
        let (args, named) = options(rest);
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        let to = named.get("to").map(String::as_str);
        if command == "exit" {
            std::process::exit(0);
        }
        if command == "serve" {
            let config = ConnectionConfig::new(arg(0), arg(1));
            reply(
                Endpoint::serve_with(config, endpoint_options(&named)).await,
                |e| {
                    endpoint = Some(e);
                    String::new()
                },
            );
            continue;
        }
        if command == "run" {
            reply(
                Endpoint::run_with(arg(0), endpoint_options(&named)).await,
                |e| {
                    endpoint = Some(e);
                    String::new()
                },
            );
            continue;
        }
        let Some(ep) = endpoint.clone() else {
            println!("err no endpoint yet");
            continue;
        };
        match command {
            "connect" => reply(
                ep.connect_to_endpoints([ConnectionConfig::new(arg(0), arg(1))])
                    .await,
                |()| String::new(),
            ),
            "subscribe" => {
                let sub = ep.subscribe(|Numbered(n): Numbered| println!("got {n}"));
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "subscribe-blob" => {
                let sub = ep.subscribe(|Blob(bytes): Blob| println!("blob {}", bytes.len()));
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "subscribe-panicky" => {
                let sub = ep.subscribe(|Numbered(n): Numbered| {
                    if n % 2 == 1 {
                        panic!("odd numbers panic, on purpose");
                    }
                    println!("got {n}");
                });
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "stream" => {
                let mut stream = ep.stream_with_origin::<Numbered>();
                holders.tasks.push(tokio::spawn(async move {
                    while let Some((origin, Numbered(n))) = stream.next().await {
                        println!("stream {n} from {origin}");
                    }
                    println!("stream ended");
                }));
                println!("ok");
            }
            "stream-double" => {
                // The request type as a plain event: seen, never answered.
                let mut stream = ep.stream::<Double>();
                holders.tasks.push(tokio::spawn(async move {
                    while let Some(Double(n)) = stream.next().await {
                        println!("plain {n}");
                    }
                }));
                println!("ok");
            }
            "stream-check" => {
                // Receives COUNT events, checking their order, then reports.
                let count: u64 = arg(0).parse().expect("count");
                let mut stream = ep.stream::<Numbered>();
                holders.tasks.push(tokio::spawn(async move {
                    let mut peak_rss = 0;
                    for expected in 0..count {
                        match stream.next().await {
                            Some(Numbered(n)) if n == expected => {}
                            Some(Numbered(n)) => {
                                println!("out-of-order expected {expected} got {n}");
                                return;
                            }
                            None => {
                                println!("ended-early after {expected}");
                                return;
                            }
                        }
                        if expected % 65536 == 0 {
                            peak_rss = peak_rss.max(lahja_workspace::rss_kib().unwrap_or(0));
                        }
                    }
                    println!("in-order {count} peak-rss-kib {peak_rss}");
                }));
                println!("ok");
            }
            "stall" => {
                // Subscribes and never reads.
                holders.stalled.push(ep.stream::<Numbered>());
                println!("ok");
            }
            "unsubscribe" => {
                holders.subscriptions.clear();
                holders.stalled.clear();
                for task in holders.tasks.drain(..) {
                    task.abort();
                }
                println!("ok");
            }
            "answer" => {
                let sub = ep.handle_requests(|Double(n)| async move { Doubled(n.wrapping_mul(2)) });
                holders.subscriptions.push(sub);
                let echo = ep.handle_requests(|Echo(bytes)| async move { Blob(bytes) });
                holders.subscriptions.push(echo);
                println!("ok");
            }
            "answer-panicky" => {
                let sub = ep.handle_requests(|Double(n)| async move {
                    if n == 0 {
                        panic!("zero panics, on purpose");
                    }
                    Doubled(n.wrapping_mul(2))
                });
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "answer-tag" => {
                let tag = arg(0).to_owned();
                let sub = ep.handle_requests(move |WhoAreYou| {
                    let tag = tag.clone();
                    async move { Tag(tag) }
                });
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "answer-wrong" => {
                let mut requests = ep.stream_requests::<Double>();
                let responder = ep.clone();
                holders.tasks.push(tokio::spawn(async move {
                    while let Some(request) = requests.next().await {
                        let _ = responder
                            .broadcast_with(WrongAnswer, request.config())
                            .await;
                    }
                }));
                println!("ok");
            }
            "drop-requests" => {
                let mut requests = ep.stream_requests::<Double>();
                holders.tasks.push(tokio::spawn(async move {
                    while let Some(request) = requests.next().await {
                        drop(request);
                    }
                }));
                println!("ok");
            }
            "hold-requests" => {
                // Keeps requests unanswered, reporting how many it holds.
                let mut requests = ep.stream_requests::<Double>();
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                holders.tasks.push(tokio::spawn(async move {
                    let mut held = 0;
                    while let Some(request) = requests.next().await {
                        held += 1;
                        println!("holding {held}");
                        let _ = tx.send(request);
                    }
                }));
                holders.tasks.push(tokio::spawn(async move {
                    let mut keep = Vec::new();
                    while let Some(request) = rx.recv().await {
                        keep.push(request);
                    }
                }));
                println!("ok");
            }
            "broadcast" => {
                let n: u64 = arg(0).parse().expect("number");
                reply(
                    ep.broadcast_with(Numbered(n), config_with(to)).await,
                    |()| String::new(),
                );
            }
            "broadcast-internal" => {
                let n: u64 = arg(0).parse().expect("number");
                let config = BroadcastConfig::default().internal();
                reply(ep.broadcast_with(Numbered(n), config).await, |()| {
                    String::new()
                });
            }
            "broadcast-range" => {
                let (from, until): (u64, u64) = (arg(0).parse().unwrap(), arg(1).parse().unwrap());
                let mut result = Ok(());
                for n in from..until {
                    result = ep.broadcast(Numbered(n)).await;
                    if result.is_err() {
                        break;
                    }
                }
                reply(result, |()| String::new());
            }
            "broadcast-blob" => {
                let len: usize = arg(0).parse().expect("length");
                let blob = if named.get("kind").map(String::as_str) == Some("zeros") {
                    vec![0; len]
                } else {
                    lahja_workspace::noise(len, 7)
                };
                reply(ep.broadcast(Blob(blob)).await, |()| String::new());
            }
            "request" => {
                let n: u64 = arg(0).parse().expect("number");
                reply(
                    ep.request_with(Double(n), config_with(to)).await,
                    |Doubled(m)| format!("answer {m}"),
                );
            }
            "request-many" => {
                // COUNT concurrent requests; prints how many failed and how.
                let count: u64 = arg(0).parse().expect("count");
                let mut tasks = Vec::new();
                for n in 0..count {
                    let ep = ep.clone();
                    tasks.push(tokio::spawn(async move { ep.request(Double(n)).await }));
                }
                let mut errors: HashMap<String, usize> = HashMap::new();
                for task in tasks {
                    if let Err(error) = task.await.unwrap() {
                        let kind = format!("{error:?}");
                        let kind = kind.split([' ', '{', '(']).next().unwrap_or("?").to_owned();
                        *errors.entry(kind).or_default() += 1;
                    }
                }
                let mut summary: Vec<_> = errors.into_iter().collect();
                summary.sort();
                println!("ok errors {summary:?}");
            }
            "request-who" => {
                reply(
                    ep.request_with(WhoAreYou, config_with(to)).await,
                    |Tag(tag)| format!("tag {tag}"),
                );
            }
            "wait-connected" => reply(ep.wait_until_connected_to(arg(0)).await, |()| String::new()),
            "wait-subscribed" => reply(wait_subscribed(&ep, arg(0), arg(1)).await, |()| {
                String::new()
            }),
            "wait-for" => reply(ep.wait_for::<Numbered>().await, |Numbered(n)| {
                format!("waited {n}")
            }),
            "is-subscribed" => println!("ok {}", is_subscribed::<Numbered>(&ep, arg(0))),
            "connected" => {
                let mut names: Vec<_> = ep
                    .get_connected_endpoints_and_subscriptions()
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect();
                names.sort();
                println!("ok {}", names.join(","));
            }
            "subscribe-rich" => {
                let sub = ep.subscribe(|rich: Rich| println!("rich {}", rich.text.len()));
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "answer-double-size" => {
                // An answer twice the size of its request.
                let sub = ep.handle_requests(|Echo(bytes)| async move {
                    Blob([&bytes[..], &bytes[..]].concat())
                });
                holders.subscriptions.push(sub);
                println!("ok");
            }
            "many-subscribe" => {
                holders
                    .subscriptions
                    .extend(many::subscribe_all(&ep, &holders.many_hits));
                println!("ok");
            }
            "many-answer" => {
                holders.subscriptions.extend(many::answer_all(&ep));
                println!("ok");
            }
            "many-wait-subscribed" => {
                reply(many::wait_subscribed(&ep, arg(0)).await, |()| String::new())
            }
            "many-broadcast" => reply(many::broadcast_all(&ep).await, |()| String::new()),
            "many-request" => reply(many::request_all(&ep, arg(0)).await, |right| {
                right.to_string()
            }),
            "many-count" => println!(
                "ok {}",
                holders.many_hits.load(std::sync::atomic::Ordering::Relaxed)
            ),
            "rss" => println!("ok {}", lahja_workspace::rss_kib().unwrap_or(0)),
            "stop" => {
                ep.stop().await;
                endpoint = None;
                println!("ok");
            }
            other => println!("err unknown command {other}"),
        }
    }
}
