//! The live commands: `tap`, `hz` and `top`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lahja::EventId;
use lahja::introspect::{Direction, FrameKind, Observer, Report, Tapped};
use serde_json::json;

use crate::commands::{Output, fail, hex};
use crate::probe::{self, State};
use crate::table::Table;

/// `HH:MM:SS.mmmuuu` (UTC) of a time in microseconds since the epoch.
fn clock(unix_us: u64) -> String {
    let seconds = unix_us / 1_000_000;
    let (h, m, s) = (seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    format!("{h:02}:{m:02}:{s:02}.{:06}", unix_us % 1_000_000)
}

/// The endpoints that answer in `dir` (name, socket path), or the one
/// named `only`.
async fn endpoints(dir: &Path, only: Option<&str>) -> Result<Vec<(String, PathBuf)>, String> {
    if let Some(name) = only {
        return Ok(vec![(name.to_owned(), dir.join(format!("{name}.sock")))]);
    }
    Ok(probe::all(dir)
        .await?
        .into_iter()
        .filter_map(|f| match f.state {
            State::Alive(report) => Some((report.name, f.path)),
            _ => None,
        })
        .collect())
}

/// The endpoint that requested what `copy` is part of.
fn requester(copy: &Tapped) -> &str {
    match copy.kind {
        FrameKind::Response => copy.targets.first().map_or("", String::as_str),
        _ => &copy.origin,
    }
}

/// `lahja tap`.
pub(crate) async fn tap(
    dir: &Path,
    types: &[String],
    endpoint: Option<&str>,
    count: Option<u64>,
    out: Output,
) -> ExitCode {
    let found = match endpoints(dir, endpoint).await {
        Ok(found) if !found.is_empty() => found,
        Ok(_) => return fail(format!("no endpoint answers in {}", dir.display())),
        Err(error) => return fail(error),
    };
    let ids: Vec<EventId> = types.iter().map(|t| EventId::of(t)).collect();
    let (tx, mut copies) = tokio::sync::mpsc::channel::<(String, lahja::Result<Tapped>)>(1024);
    let mut names = Vec::new();
    for (name, path) in found {
        let tapping = async {
            let mut observer = Observer::connect(&path).await?;
            observer.tap(&ids).await.map(|()| observer)
        };
        let mut observer = match tapping.await {
            Ok(observer) => observer,
            // One named endpoint is the whole tap; of several, tap the rest.
            Err(error) if endpoint.is_some() => {
                return fail(format!("cannot tap `{name}`: {error}"));
            }
            Err(error) => {
                eprintln!("lahja: not tapping `{name}`: {error}");
                continue;
            }
        };
        names.push(name.clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let copy = observer.next_tapped().await;
                let failed = copy.is_err();
                if tx.send((name.clone(), copy)).await.is_err() || failed {
                    return;
                }
            }
        });
    }
    drop(tx);
    if names.is_empty() {
        return fail("no endpoint could be tapped");
    }
    let tapped: HashSet<&str> = names.iter().map(String::as_str).collect();
    // Copies from several endpoints race each other to us: each is held
    // this long, so that they come out in time order (a response after
    // its request).
    let hold_us: u64 = if names.len() > 1 { 100_000 } else { 0 };
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut shown = Shown {
        out,
        asked: HashMap::new(),
        count: 0,
    };
    let mut lost: HashMap<String, u64> = HashMap::new();
    let mut closed = false;
    let mut arrived = 0;
    loop {
        let now = now_us();
        while let Some(Reverse(first)) = held.peek() {
            if !closed && now.saturating_sub(first.copy.time_unix_us) < hold_us {
                break;
            }
            let Some(Reverse(first)) = held.pop() else {
                break;
            };
            if count.is_some_and(|n| shown.count >= n) {
                break;
            }
            shown.show(&first.endpoint, first.copy);
        }
        if count.is_some_and(|n| shown.count >= n) || (closed && held.is_empty()) {
            break;
        }
        tokio::select! {
            got = copies.recv(), if !closed => match got {
                None => closed = true,
                // The others go on; the tap ends when every one has stopped.
                Some((endpoint, Err(error))) => eprintln!("lahja: `{endpoint}` stopped: {error}"),
                Some((endpoint, Ok(copy))) => {
                    lost.insert(endpoint.clone(), copy.lost);
                    // A frame between two tapped endpoints shows once, as sent.
                    if copy.direction == Direction::Received && tapped.contains(copy.origin.as_str()) {
                        continue;
                    }
                    arrived += 1;
                    held.push(Reverse(Held { seq: arrived, endpoint, copy }));
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(10)), if !held.is_empty() => {}
        }
    }
    let lost: u64 = lost.values().sum();
    if lost > 0 {
        eprintln!("lahja: the endpoints dropped {lost} copies this tap read too slowly");
    }
    ExitCode::SUCCESS
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A copy waiting to be shown, ordered by time.
struct Held {
    seq: u64,
    endpoint: String,
    copy: Tapped,
}

impl Held {
    fn key(&self) -> (u64, u64) {
        (self.copy.time_unix_us, self.seq)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Requests remembered for pairing with their responses.
const MAX_ASKED: usize = 10_000;

/// Prints copies, pairing each response with its request.
struct Shown {
    out: Output,
    /// (requester, request ID) -> when the request went.
    asked: HashMap<(String, u64), u64>,
    count: u64,
}

impl Shown {
    fn show(&mut self, endpoint: &str, copy: Tapped) {
        self.count += 1;
        let key = (requester(&copy).to_owned(), copy.request_id);
        let latency_ms = match copy.kind {
            FrameKind::Request => {
                // Requests whose responses never show (lost copies, a tap
                // on requests only) must not pile up.
                if self.asked.len() >= MAX_ASKED {
                    self.asked.clear();
                }
                self.asked.insert(key, copy.time_unix_us);
                None
            }
            FrameKind::Response => self
                .asked
                .remove(&key)
                .map(|t| copy.time_unix_us.saturating_sub(t) as f64 / 1000.0),
            FrameKind::Event => None,
        };
        let name = copy
            .event
            .name
            .clone()
            .unwrap_or_else(|| hex(copy.event.id));
        if self.out.json {
            println!(
                "{}",
                json!({
                    "time_unix_us": copy.time_unix_us,
                    "endpoint": endpoint,
                    "direction": format!("{:?}", copy.direction).to_lowercase(),
                    "kind": format!("{:?}", copy.kind).to_lowercase(),
                    "type": name,
                    "id": hex(copy.event.id),
                    "origin": copy.origin,
                    "targets": copy.targets,
                    "request_id": copy.request_id,
                    "size": copy.size,
                    "value": copy.value,
                    "hex": copy.hex,
                    "latency_ms": latency_ms,
                    "lost": copy.lost,
                })
            );
            return;
        }
        let kind = match (copy.kind, latency_ms) {
            (FrameKind::Event, _) => String::new(),
            (FrameKind::Request, _) => format!(" request #{}", copy.request_id),
            (FrameKind::Response, Some(ms)) => {
                format!(" response #{} after {ms:.3} ms", copy.request_id)
            }
            (FrameKind::Response, None) => format!(" response #{}", copy.request_id),
        };
        let value = match (&copy.value, &copy.hex) {
            (Some(value), _) => value.clone(),
            (None, Some(hex)) if copy.size > 64 => format!("0x{hex}…"),
            (None, Some(hex)) => format!("0x{hex}"),
            (None, None) => "(too large to show)".to_owned(),
        };
        println!(
            "{}  {} -> {}  {name}{kind}  {} B  {value}",
            clock(copy.time_unix_us),
            copy.origin,
            copy.targets.join(","),
            copy.size,
        );
    }
}

/// The reports of every live endpoint, by name.
async fn snapshot(dir: &Path) -> Result<BTreeMap<String, Report>, String> {
    Ok(probe::all(dir)
        .await?
        .into_iter()
        .filter_map(|f| match f.state {
            State::Alive(report) => Some((report.name.clone(), *report)),
            _ => None,
        })
        .collect())
}

/// Events of type `id` sent by each endpoint (all types: `None`).
fn sent(report: &Report, id: Option<u64>) -> u64 {
    report
        .traffic
        .iter()
        .filter(|t| id.is_none_or(|id| t.event.id == id))
        .map(|t| t.sent)
        .sum()
}

fn received(report: &Report) -> u64 {
    report.traffic.iter().map(|t| t.received).sum()
}

/// The earlier report of the same process as `report`: none if the
/// endpoint is new since, or restarted (its counters began again).
pub(crate) fn earlier_life<'a>(
    before: &'a BTreeMap<String, Report>,
    report: &Report,
) -> Option<&'a Report> {
    before
        .get(&report.name)
        .filter(|r| r.pid == report.pid && r.started_unix_ms == report.started_unix_ms)
}

/// Per second, between two counts `window` apart.
fn rate(before: u64, after: u64, window: f64) -> f64 {
    after.saturating_sub(before) as f64 / window
}

/// `lahja hz TYPE`.
pub(crate) async fn hz(dir: &Path, name: &str, window: f64, once: bool, out: Output) -> ExitCode {
    if window <= 0.0 {
        return fail("--window must be more than 0 seconds");
    }
    let id = EventId::of(name).as_u64();
    every_window(dir, window, once, |before, after| {
        let mut total = 0.0;
        let mut senders = BTreeMap::new();
        for (endpoint, report) in after {
            // An endpoint new since the last snapshot has no rate yet.
            let Some(earlier) = earlier_life(before, report) else {
                continue;
            };
            let earlier = sent(earlier, Some(id));
            let r = rate(earlier, sent(report, Some(id)), window);
            if r > 0.0 {
                senders.insert(endpoint.clone(), r);
            }
            total += r;
        }
        if out.json {
            println!(
                "{}",
                json!({"type": name, "id": hex(id), "rate": total, "window_s": window, "senders": senders})
            );
        } else {
            let by: Vec<String> = senders
                .iter()
                .map(|(e, r)| format!("{e} {r:.1}/s"))
                .collect();
            let by = if by.is_empty() {
                "nobody sends it".to_owned()
            } else {
                by.join(", ")
            };
            println!("{name}: {total:.1}/s over {window} s ({by})");
        }
    })
    .await
}

/// Runs `show` on each pair of snapshots `window` seconds apart, once
/// or until interrupted.
async fn every_window(
    dir: &Path,
    window: f64,
    once: bool,
    mut show: impl FnMut(&BTreeMap<String, Report>, &BTreeMap<String, Report>),
) -> ExitCode {
    let mut before = match snapshot(dir).await {
        Ok(reports) => reports,
        Err(error) => return fail(error),
    };
    loop {
        tokio::time::sleep(Duration::from_secs_f64(window)).await;
        let after = match snapshot(dir).await {
            Ok(reports) => reports,
            Err(error) => return fail(error),
        };
        show(&before, &after);
        if once {
            return ExitCode::SUCCESS;
        }
        before = after;
    }
}

/// `lahja top`.
pub(crate) async fn top(dir: &Path, window: f64, once: bool, out: Output) -> ExitCode {
    if window <= 0.0 {
        return fail("--window must be more than 0 seconds");
    }
    every_window(dir, window, once, |before, after| {
        let mut table = Table::new(&[
            "ENDPOINT",
            "PID",
            "PEERS",
            "SENT/S",
            "RECEIVED/S",
            "MAX QUEUED",
            "PENDING",
        ]);
        for (name, report) in after {
            let earlier = earlier_life(before, report);
            // No rate yet for an endpoint new since the last snapshot.
            let sent_rate =
                earlier.map_or(0.0, |e| rate(sent(e, None), sent(report, None), window));
            let received_rate =
                earlier.map_or(0.0, |e| rate(received(e), received(report), window));
            let queued = report
                .peers
                .iter()
                .map(|p| p.queued_bytes)
                .max()
                .unwrap_or(0);
            if out.json {
                println!(
                    "{}",
                    json!({
                        "name": name,
                        "pid": report.pid,
                        "peers": report.peers.len(),
                        "sent_per_s": sent_rate,
                        "received_per_s": received_rate,
                        "max_queued_bytes": queued,
                        "pending": report.pending.len(),
                    })
                );
            }
            table.row(vec![
                name.clone(),
                report.pid.to_string(),
                report.peers.len().to_string(),
                format!("{sent_rate:.1}"),
                format!("{received_rate:.1}"),
                queued.to_string(),
                report.pending.len().to_string(),
            ]);
        }
        if !out.json {
            if !once {
                // Refresh in place: home the cursor, clear the screen.
                print!("\x1b[H\x1b[2J");
            }
            print!(
                "lahja top: {} endpoints, rates over {window} s\n\n{}",
                after.len(),
                table.render()
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    })
    .await
}

/// `lahja send` and `lahja request`: an endpoint that knows the type
/// sends the value as itself.
pub(crate) async fn send(
    dir: &Path,
    name: &str,
    json: &str,
    endpoint: Option<&str>,
    timeout: f64,
    expect_answer: bool,
) -> ExitCode {
    if timeout <= 0.0 {
        return fail("--timeout must be more than 0 seconds");
    }
    let id = EventId::of(name);
    let found = match endpoints(dir, endpoint).await {
        Ok(found) => found,
        Err(error) => return fail(error),
    };
    for (candidate, path) in &found {
        let mut observer = match Observer::connect(path).await {
            Ok(observer) => observer,
            Err(error) if endpoint.is_some() => {
                return fail(format!("cannot reach `{candidate}`: {error}"));
            }
            Err(_) => continue,
        };
        if !observer.knows(id) {
            if endpoint.is_some() {
                return fail(format!("`{candidate}` does not know the type `{name}`"));
            }
            continue;
        }
        let sent = match expect_answer {
            true => {
                let timeout = Duration::from_secs_f64(timeout);
                observer.request_json(name, json, timeout).await
            }
            false => observer
                .send_json(name, json)
                .await
                .map(|()| "null".to_owned()),
        };
        let answer = match sent {
            Ok(answer) => answer,
            Err(lahja::Error::ConnectionAttemptRejected { reason, .. }) => {
                return fail(format!("`{candidate}` did not send it: {reason}"));
            }
            Err(error) => return fail(error),
        };
        // A response is printed as the JSON it is; an event is confirmed.
        match expect_answer {
            true => println!("{answer}"),
            false => println!("sent {name} from {candidate}"),
        }
        return ExitCode::SUCCESS;
    }
    fail(format!(
        "no endpoint in {} knows the type `{name}`: the tool encodes a value only through an endpoint whose program declares the type",
        dir.display()
    ))
}
