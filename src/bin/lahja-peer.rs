//! A scriptable endpoint for cross-process tests: it reads one command per
//! line on stdin and answers each with one line starting `ok` or `err`.
//! Events it receives are printed as they come (`got`, `stream`, ...).
//! Words of the form `key=value` are options (`to=NAME` routes to one
//! endpoint; `queue=`, `capacity=`, `max_frame=`, `shared=N|off` set
//! endpoint options).
//!
//! Not an example: the integration tests in `tests/ipc/` drive it. With
//! `LAHJA_PEER_ABORT_ON_PANIC` set it aborts on any panic (a victim of the
//! hostile-input tests: a crash shows in its exit status).
//!
//! The commands are the table [`COMMANDS`] (`help` prints it):
//!
//! - lifecycle: `serve NAME PATH`, `run NAME`, `connect NAME PATH`, `stop`,
//!   `exit`
//! - subscribing: `subscribe`, `subscribe-blob`, `subscribe-blob-digest`, `subscribe-rich`,
//!   `subscribe-panicky`, `stream`, `stream-double`, `stream-check COUNT`,
//!   `stall`, `unsubscribe`
//! - answering: `answer`, `answer-panicky`, `answer-tag TAG`,
//!   `answer-wrong`, `answer-double-size`, `drop-requests`, `hold-requests`
//! - sending: `broadcast N`, `broadcast-internal N`, `broadcast-range FROM
//!   UNTIL`, `broadcast-blob LEN [kind=zeros]`, `broadcast-blobs COUNT
//!   LEN`, `blob-nowait LEN`, `request N`, `request-many COUNT`,
//!   `request-who`
//! - groups: `join GROUP`, `leave GROUP`, `members GROUP`, `gather N`
//!   (`serve`/`run` take `groups=A,B`; `to=` and `group=` route)
//! - zenoh: `zenoh BUS` (options `listen=`, `connect=`, `lease_ms=`),
//!   `refused`
//! - observing: `wait-connected NAME`, `wait-subscribed NAME TYPE`,
//!   `wait-for`, `is-subscribed NAME`, `connected`, `rss`, `shm-held`
//! - 320 generated types: `many-subscribe`, `many-answer`,
//!   `many-wait-subscribed NAME`, `many-broadcast`, `many-request NAME`,
//!   `many-count`

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lahja::{BroadcastConfig, ConnectionConfig, Endpoint, EndpointOptions, Event, Subscription};
use lahja_workspace::events::*;
use lahja_workspace::many;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The process's state: its endpoint and what the commands keep alive.
#[derive(Default)]
struct Peer {
    endpoint: Option<Endpoint>,
    subscriptions: Vec<Subscription>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stalled: Vec<lahja::EventStream<Numbered>>,
    /// Deliveries of the generated types (`many-*` commands).
    many_hits: Arc<AtomicU64>,
}

impl Peer {
    /// The endpoint (the dispatcher checked there is one).
    fn ep(&self) -> Endpoint {
        self.endpoint.clone().expect("checked by the dispatcher")
    }

    fn keep(&mut self, subscription: Subscription) {
        self.subscriptions.push(subscription);
        println!("ok");
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
        println!("ok");
    }
}

/// One command's words: positional arguments and `key=value` options.
struct Args {
    positional: Vec<String>,
    named: HashMap<String, String>,
}

impl Args {
    fn parse(words: &[&str]) -> Args {
        let mut args = Args {
            positional: Vec::new(),
            named: HashMap::new(),
        };
        for word in words {
            match word.split_once('=') {
                Some((k, v)) => {
                    args.named.insert(k.to_owned(), v.to_owned());
                }
                None => args.positional.push((*word).to_owned()),
            }
        }
        args
    }

    fn arg(&self, i: usize) -> &str {
        self.positional
            .get(i)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn number(&self, i: usize) -> u64 {
        self.arg(i).parse().expect("a number")
    }

    fn named(&self, key: &str) -> Option<&str> {
        self.named.get(key).map(String::as_str)
    }

    /// `to=NAME` routes to one endpoint, `group=GROUP` to a group's members.
    fn config(&self) -> BroadcastConfig {
        let mut config = match self.named("to") {
            Some(name) => BroadcastConfig::to(name),
            None => BroadcastConfig::default(),
        };
        config.filter_group = self.named("group").map(str::to_owned);
        config
    }

    fn endpoint_options(&self) -> EndpointOptions {
        let mut options = EndpointOptions::default();
        let parse = |key| self.named(key).map(|v| v.parse().expect("a number"));
        if let Some(v) = parse("queue") {
            options.queue_bytes = v;
        }
        if let Some(v) = parse("capacity") {
            options.stream_capacity = v;
        }
        if let Some(v) = parse("max_frame") {
            options.max_frame_bytes = v;
        }
        match self.named("shared") {
            Some("off") => options.shared_memory_above = None,
            Some(above) => options.shared_memory_above = Some(above.parse().expect("a number")),
            None => {}
        }
        if let Some(groups) = self.named("groups") {
            options.groups = groups.split(',').map(str::to_owned).collect();
        }
        options
    }
}

type Step<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// One command of the language.
struct Command {
    name: &'static str,
    usage: &'static str,
    /// Whether it needs `serve` or `run` first.
    needs_endpoint: bool,
    run: for<'a> fn(&'a mut Peer, &'a Args) -> Step<'a>,
}

macro_rules! commands {
    ($($name:literal $needs:literal $usage:literal => $run:expr,)*) => {
        &[$(Command { name: $name, usage: $usage, needs_endpoint: $needs, run: $run },)*]
    };
}

/// Every command: name, whether it needs an endpoint, usage, and what it does.
const COMMANDS: &[Command] = commands! {
    "serve" false "serve NAME PATH: serve at PATH (options: queue, capacity, max_frame, groups=A,B)" => |p, a| Box::pin(async move {
        let config = ConnectionConfig::new(a.arg(0), a.arg(1));
        reply(Endpoint::serve_with(config, a.endpoint_options()).await, |e| { p.endpoint = Some(e); String::new() });
    }),
    "run" false "run NAME: run without serving (same options)" => |p, a| Box::pin(async move {
        reply(Endpoint::run_with(a.arg(0), a.endpoint_options()).await, |e| { p.endpoint = Some(e); String::new() });
    }),
    "help" false "help: list the commands" => |_, _| Box::pin(async {
        for command in COMMANDS {
            println!("{}", command.usage);
        }
        println!("ok");
    }),
    "connect" true "connect NAME PATH: connect to the endpoint NAME at PATH" => |p, a| Box::pin(async move {
        reply(p.ep().connect_to_endpoints([ConnectionConfig::new(a.arg(0), a.arg(1))]).await, |()| String::new());
    }),
    "stop" true "stop: stop the endpoint" => |p, _| Box::pin(async move {
        p.ep().stop().await;
        p.endpoint = None;
        println!("ok");
    }),
    "subscribe" true "subscribe: print `got N` for each Numbered" => |p, _| Box::pin(async move {
        let sub = p.ep().subscribe(|Numbered(n): Numbered| println!("got {n}"));
        p.keep(sub);
    }),
    "subscribe-blob" true "subscribe-blob: print `blob LEN` for each Blob" => |p, _| Box::pin(async move {
        let sub = p.ep().subscribe(|Blob(bytes): Blob| println!("blob {}", bytes.len()));
        p.keep(sub);
    }),
    "subscribe-blob-digest" true "subscribe-blob-digest: print `digest LEN DIGEST` for each Blob" => |p, _| Box::pin(async move {
        let sub = p.ep().subscribe(|Blob(bytes): Blob| {
            println!("digest {} {}", bytes.len(), lahja_workspace::digest(&bytes));
        });
        p.keep(sub);
    }),
    "subscribe-rich" true "subscribe-rich: print `rich LEN` for each Rich" => |p, _| Box::pin(async move {
        let sub = p.ep().subscribe(|rich: Rich| println!("rich {}", rich.text.len()));
        p.keep(sub);
    }),
    "subscribe-panicky" true "subscribe-panicky: like subscribe, panicking on odd numbers" => |p, _| Box::pin(async move {
        let sub = p.ep().subscribe(|Numbered(n): Numbered| {
            if n % 2 == 1 {
                panic!("odd numbers panic, on purpose");
            }
            println!("got {n}");
        });
        p.keep(sub);
    }),
    "stream" true "stream: print `stream N from ORIGIN` for each Numbered, then `stream ended`" => |p, _| Box::pin(async move {
        let mut stream = p.ep().stream_with_origin::<Numbered>();
        p.spawn(async move {
            while let Some((origin, Numbered(n))) = stream.next().await {
                println!("stream {n} from {origin}");
            }
            println!("stream ended");
        });
    }),
    "stream-double" true "stream-double: print `plain N` for each Double seen as a plain event" => |p, _| Box::pin(async move {
        let mut stream = p.ep().stream::<Double>();
        p.spawn(async move {
            while let Some(Double(n)) = stream.next().await {
                println!("plain {n}");
            }
        });
    }),
    "stream-check" true "stream-check COUNT: receive COUNT Numbered in order, then report order and peak RSS" => |p, a| Box::pin(async move {
        let count = a.number(0);
        let mut stream = p.ep().stream::<Numbered>();
        p.spawn(async move {
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
        });
    }),
    "stall" true "stall: subscribe to Numbered and never read" => |p, _| Box::pin(async move {
        let stream = p.ep().stream::<Numbered>();
        p.stalled.push(stream);
        println!("ok");
    }),
    "unsubscribe" true "unsubscribe: drop every subscription, stream and task" => |p, _| Box::pin(async move {
        p.subscriptions.clear();
        p.stalled.clear();
        for task in p.tasks.drain(..) {
            task.abort();
        }
        println!("ok");
    }),
    "answer" true "answer: answer Double (n * 2) and Echo (the bytes as a Blob)" => |p, _| Box::pin(async move {
        let ep = p.ep();
        p.subscriptions.push(ep.handle_requests(|Double(n)| async move { Doubled(n.wrapping_mul(2)) }));
        p.keep(ep.handle_requests(|Echo(bytes)| async move { Blob(bytes) }));
    }),
    "answer-panicky" true "answer-panicky: answer Double, panicking on 0" => |p, _| Box::pin(async move {
        let sub = p.ep().handle_requests(|Double(n)| async move {
            if n == 0 {
                panic!("zero panics, on purpose");
            }
            Doubled(n.wrapping_mul(2))
        });
        p.keep(sub);
    }),
    "answer-tag" true "answer-tag TAG: answer WhoAreYou with Tag(TAG)" => |p, a| Box::pin(async move {
        let tag = a.arg(0).to_owned();
        let sub = p.ep().handle_requests(move |WhoAreYou| {
            let tag = tag.clone();
            async move { Tag(tag) }
        });
        p.keep(sub);
    }),
    "answer-wrong" true "answer-wrong: answer Double with a WrongAnswer" => |p, _| Box::pin(async move {
        let responder = p.ep();
        let mut requests = responder.stream_requests::<Double>();
        p.spawn(async move {
            while let Some(request) = requests.next().await {
                let _ = responder.broadcast_with(WrongAnswer, request.config()).await;
            }
        });
    }),
    "answer-double-size" true "answer-double-size: answer Echo with the bytes twice" => |p, _| Box::pin(async move {
        let sub = p.ep().handle_requests(|Echo(bytes)| async move { Blob([&bytes[..], &bytes[..]].concat()) });
        p.keep(sub);
    }),
    "drop-requests" true "drop-requests: drop every Double unanswered" => |p, _| Box::pin(async move {
        let mut requests = p.ep().stream_requests::<Double>();
        p.spawn(async move {
            while let Some(request) = requests.next().await {
                drop(request);
            }
        });
    }),
    "hold-requests" true "hold-requests: keep every Double unanswered, printing `holding N`" => |p, _| Box::pin(async move {
        let mut requests = p.ep().stream_requests::<Double>();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        p.tasks.push(tokio::spawn(async move {
            let mut keep = Vec::new();
            while let Some(request) = rx.recv().await {
                keep.push(request);
            }
        }));
        p.spawn(async move {
            let mut held = 0;
            while let Some(request) = requests.next().await {
                held += 1;
                println!("holding {held}");
                let _ = tx.send(request);
            }
        });
    }),
    "broadcast" true "broadcast N: broadcast Numbered(N) (option: to)" => |p, a| Box::pin(async move {
        reply(p.ep().broadcast_with(Numbered(a.number(0)), a.config()).await, |()| String::new());
    }),
    "broadcast-internal" true "broadcast-internal N: broadcast Numbered(N) inside this process" => |p, a| Box::pin(async move {
        let config = BroadcastConfig::default().internal();
        reply(p.ep().broadcast_with(Numbered(a.number(0)), config).await, |()| String::new());
    }),
    "broadcast-range" true "broadcast-range FROM UNTIL: broadcast Numbered(FROM..UNTIL)" => |p, a| Box::pin(async move {
        let ep = p.ep();
        let mut result = Ok(());
        for n in a.number(0)..a.number(1) {
            result = ep.broadcast(Numbered(n)).await;
            if result.is_err() {
                break;
            }
        }
        reply(result, |()| String::new());
    }),
    "broadcast-blob" true "broadcast-blob LEN: broadcast a Blob of LEN noise bytes (kind=zeros: zeros)" => |p, a| Box::pin(async move {
        let len = a.number(0) as usize;
        let blob = if a.named("kind") == Some("zeros") {
            vec![0; len]
        } else {
            lahja_workspace::noise(len, 7)
        };
        reply(p.ep().broadcast(Blob(blob)).await, |()| String::new());
    }),
    "broadcast-blobs" true "broadcast-blobs COUNT LEN: broadcast COUNT Blobs of LEN noise bytes (seeds 0, 1, ...)" => |p, a| Box::pin(async move {
        let (count, len) = (a.number(0), a.number(1) as usize);
        let endpoint = p.ep();
        let mut result = Ok(());
        for seed in 0..count {
            result = endpoint.broadcast(Blob(lahja_workspace::noise(len, seed))).await;
            if result.is_err() {
                break;
            }
        }
        reply(result, |()| String::new());
    }),
    "blob-nowait" true "blob-nowait LEN: broadcast_nowait a Blob of LEN noise bytes" => |p, a| Box::pin(async move {
        let blob = lahja_workspace::noise(a.number(0) as usize, 7);
        reply(p.ep().broadcast_nowait(Blob(blob)), |()| String::new());
    }),
    "request" true "request N: request Double(N), reply `answer M` (option: to)" => |p, a| Box::pin(async move {
        reply(p.ep().request_with(Double(a.number(0)), a.config()).await, |Doubled(m)| format!("answer {m}"));
    }),
    "request-many" true "request-many COUNT: COUNT concurrent requests, reply the errors by kind" => |p, a| Box::pin(async move {
        let ep = p.ep();
        let tasks: Vec<_> = (0..a.number(0))
            .map(|n| {
                let ep = ep.clone();
                tokio::spawn(async move { ep.request(Double(n)).await })
            })
            .collect();
        let mut errors: HashMap<String, usize> = HashMap::new();
        for task in tasks {
            if let Err(error) = task.await.unwrap() {
                let kind = error_kind(&error);
                *errors.entry(kind).or_default() += 1;
            }
        }
        let mut summary: Vec<_> = errors.into_iter().collect();
        summary.sort();
        println!("ok errors {summary:?}");
    }),
    "request-who" true "request-who: request WhoAreYou, reply `tag TAG` (option: to)" => |p, a| Box::pin(async move {
        reply(p.ep().request_with(WhoAreYou, a.config()).await, |Tag(tag)| format!("tag {tag}"));
    }),
    "join" true "join GROUP: join the process group GROUP" => |p, a| Box::pin(async move {
        reply(p.ep().join_group(a.arg(0)).await, |()| String::new());
    }),
    "leave" true "leave GROUP: leave the process group GROUP" => |p, a| Box::pin(async move {
        reply(p.ep().leave_group(a.arg(0)).await, |()| String::new());
    }),
    "members" true "members GROUP: reply the connected members of GROUP" => |p, a| Box::pin(async move {
        println!("ok {}", p.ep().group_members(a.arg(0)).join(" "));
    }),
    "gather" true "gather N: request_all Double(N), reply `ORIGIN=M` or `ORIGIN=ERROR` per target, sorted (options: to, group)" => |p, a| Box::pin(async move {
        let mut answers = match p.ep().request_all_with(Double(a.number(0)), a.config()) {
            Ok(answers) => answers,
            Err(error) => return println!("err {error:?}"),
        };
        let mut items = Vec::new();
        while let Some((origin, answer)) = answers.next().await {
            items.push(match answer {
                Ok(Doubled(m)) => format!("{origin}={m}"),
                Err(error) => format!("{origin}={}", error_kind(&error)),
            });
        }
        items.sort();
        println!("ok {}", items.join(" "));
    }),
    "wait-connected" true "wait-connected NAME: wait until connected to NAME" => |p, a| Box::pin(async move {
        reply(p.ep().wait_until_connected_to(a.arg(0)).await, |()| String::new());
    }),
    "wait-subscribed" true "wait-subscribed NAME TYPE: wait until NAME subscribes to TYPE (numbered, double, who, blob, echo)" => |p, a| Box::pin(async move {
        reply(wait_subscribed(&p.ep(), a.arg(0), a.arg(1)).await, |()| String::new());
    }),
    "wait-for" true "wait-for: wait for one Numbered, reply `waited N`" => |p, _| Box::pin(async move {
        reply(p.ep().wait_for::<Numbered>().await, |Numbered(n)| format!("waited {n}"));
    }),
    "is-subscribed" true "is-subscribed NAME: reply whether NAME subscribes to Numbered" => |p, a| Box::pin(async move {
        println!("ok {}", p.ep().is_endpoint_subscribed_to::<Numbered>(a.arg(0)));
    }),
    "connected" true "connected: reply the names of this endpoint and its peers, sorted" => |p, _| Box::pin(async move {
        let mut names: Vec<_> = p.ep().get_connected_endpoints_and_subscriptions().into_iter().map(|(name, _)| name).collect();
        names.sort();
        println!("ok {}", names.join(","));
    }),
    "zenoh" true "zenoh BUS: join the zenoh bus BUS (options: listen=L,L connect=C,C lease_ms=N)" => |p, a| Box::pin(async move {
        reply(join_zenoh(&p.ep(), a).await, |()| String::new());
    }),
    "refused" true "refused: reply the refused peers as NAME=REASON, `;`-separated" => |p, _| Box::pin(async move {
        let refused: Vec<String> = p.ep().refused_peers().into_iter().map(|(name, reason)| format!("{name}={reason}")).collect();
        println!("ok {}", refused.join(";"));
    }),
    "rss" true "rss: reply this process's RSS in KiB" => |_, _| Box::pin(async {
        println!("ok {}", lahja_workspace::rss_kib().unwrap_or(0));
    }),
    "shm-held" false "shm-held: reply `FDS BODIES MAPPED`: open descriptors, lahja memfds among them, mapped lahja memfds" => |_, _| Box::pin(async {
        let (fds, bodies, mapped) = lahja_workspace::shared_memory_held();
        println!("ok {fds} {bodies} {mapped}");
    }),
    "many-subscribe" true "many-subscribe: subscribe to every generated type, counting" => |p, _| Box::pin(async move {
        let subs = many::subscribe_all(&p.ep(), &p.many_hits);
        p.subscriptions.extend(subs);
        println!("ok");
    }),
    "many-answer" true "many-answer: answer every generated request" => |p, _| Box::pin(async move {
        let subs = many::answer_all(&p.ep());
        p.subscriptions.extend(subs);
        println!("ok");
    }),
    "many-wait-subscribed" true "many-wait-subscribed NAME: wait until NAME subscribes to the generated types" => |p, a| Box::pin(async move {
        reply(many::wait_subscribed(&p.ep(), a.arg(0)).await, |()| String::new());
    }),
    "many-broadcast" true "many-broadcast: broadcast one event of every generated type" => |p, _| Box::pin(async move {
        reply(many::broadcast_all(&p.ep()).await, |()| String::new());
    }),
    "many-request" true "many-request NAME: ask NAME every generated request, reply how many answered right" => |p, a| Box::pin(async move {
        reply(many::request_all(&p.ep(), a.arg(0)).await, |right| right.to_string());
    }),
    "many-count" true "many-count: reply how many generated events arrived" => |p, _| Box::pin(async move {
        println!("ok {}", p.many_hits.load(Ordering::Relaxed));
    }),
};

async fn wait_subscribed(endpoint: &Endpoint, who: &str, kind: &str) -> lahja::Result<()> {
    async fn wait<E: Event>(endpoint: &Endpoint, who: &str) -> lahja::Result<()> {
        endpoint.wait_until_endpoint_subscribed_to::<E>(who).await
    }
    match kind {
        "numbered" => wait::<Numbered>(endpoint, who).await,
        "double" => wait::<Double>(endpoint, who).await,
        "who" => wait::<WhoAreYou>(endpoint, who).await,
        "blob" => wait::<Blob>(endpoint, who).await,
        "echo" => wait::<Echo>(endpoint, who).await,
        other => panic!("unknown type {other}"),
    }
}

/// An error's variant name, say `RemoteDisconnected`.
fn error_kind(error: &lahja::Error) -> String {
    let debug = format!("{error:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or("?")
        .to_owned()
}

#[cfg(feature = "zenoh")]
async fn join_zenoh(endpoint: &Endpoint, args: &Args) -> lahja::Result<()> {
    let mut config = lahja::zenoh::ZenohConfig::new(args.arg(0));
    let list = |key| args.named(key).into_iter().flat_map(|v| v.split(','));
    for locator in list("listen") {
        config = config.listen(locator);
    }
    for locator in list("connect") {
        config = config.connect(locator);
    }
    if let Some(ms) = args.named("lease_ms") {
        config = config.lease(std::time::Duration::from_millis(
            ms.parse().expect("a number"),
        ));
    }
    endpoint.join_zenoh(config).await
}

#[cfg(not(feature = "zenoh"))]
async fn join_zenoh(_: &Endpoint, _: &Args) -> lahja::Result<()> {
    Err(lahja::Error::Zenoh(
        "lahja-peer was built without the `zenoh` feature".into(),
    ))
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
    let mut peer = Peer::default();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&name, rest)) = words.split_first() else {
            continue;
        };
        if name == "exit" {
            std::process::exit(0);
        }
        let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
            println!("err unknown command {name}");
            continue;
        };
        if command.needs_endpoint && peer.endpoint.is_none() {
            println!("err no endpoint yet");
            continue;
        }
        let args = Args::parse(rest);
        (command.run)(&mut peer, &args).await;
    }
}
