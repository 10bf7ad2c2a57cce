//! The commands: each gathers reports, then prints a table or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lahja::introspect::{PeerReport, Report, TypeName};
use serde_json::{Value, json};

use crate::probe::{self, Found, State};
use crate::table::Table;

/// How to print.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

/// `lahja: ...` on stderr, exit status 1.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("lahja: {message}");
    ExitCode::from(1)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn uptime_s(report: &Report) -> u64 {
    now_ms().saturating_sub(report.started_unix_ms) / 1000
}

/// `3d4h`, `4h5m`, `5m6s`, `6s`.
fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

pub(crate) fn hex(id: u64) -> String {
    format!("{id:#018x}")
}

/// A type for JSON: its ID as a hex string, and its wire name (or null).
fn type_json(t: &TypeName) -> Value {
    json!({ "id": hex(t.id), "name": t.name })
}

/// A type for people: its wire name, else its ID.
fn type_text(t: &TypeName) -> String {
    t.name.clone().unwrap_or_else(|| hex(t.id))
}

fn state_text(state: &State) -> &'static str {
    match state {
        State::Alive(_) => "alive",
        State::Stale => "stale",
        State::Unreachable(_) => "unreachable",
    }
}

fn print_lines(lines: impl IntoIterator<Item = Value>) {
    for line in lines {
        println!("{line}");
    }
}

/// `lahja list`.
pub(crate) async fn list(dir: &Path, out: Output) -> ExitCode {
    let found = match probe::all(dir).await {
        Ok(found) => found,
        Err(error) => return fail(error),
    };
    if out.json {
        print_lines(found.iter().map(|f| {
            let report = match &f.state {
                State::Alive(report) => Some(report),
                _ => None,
            };
            json!({
                "name": report.map_or(f.name.as_str(), |r| r.name.as_str()),
                "pid": report.map(|r| r.pid),
                "alive": report.is_some(),
                "state": state_text(&f.state),
                "path": f.path.display().to_string(),
                "uptime_s": report.map(|r| uptime_s(r)),
                "peers": report.map(|r| r.peers.len()),
                "subscriptions": report.map(|r| r.subscriptions.len()),
                "error": match &f.state { State::Unreachable(e) => Some(e.as_str()), _ => None },
            })
        }));
        return ExitCode::SUCCESS;
    }
    let mut table = Table::new(&["NAME", "PID", "STATE", "UPTIME", "PEERS", "SUBS", "PATH"]);
    for f in &found {
        let cells = match &f.state {
            State::Alive(r) => vec![
                r.name.clone(),
                r.pid.to_string(),
                "alive".into(),
                duration(uptime_s(r)),
                r.peers.len().to_string(),
                r.subscriptions.len().to_string(),
            ],
            other => vec![
                f.name.clone(),
                "-".into(),
                state_text(other).into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        };
        table.row([cells, vec![f.path.display().to_string()]].concat());
    }
    print!("{}", table.render());
    ExitCode::SUCCESS
}

fn peer_json(p: &PeerReport) -> Value {
    json!({
        "name": p.name,
        "connected_unix_ms": p.connected_unix_ms,
        "queued_bytes": p.queued_bytes,
        "queue_limit": p.queue_limit,
        "frames_in": p.frames_in,
        "bytes_in": p.bytes_in,
        "frames_out": p.frames_out,
        "bytes_out": p.bytes_out,
        "subscriptions": p.subscriptions.iter().map(type_json).collect::<Vec<_>>(),
        "groups": p.groups,
    })
}

fn info_json(r: &Report, path: &Path) -> Value {
    json!({
        "name": r.name,
        "pid": r.pid,
        "path": path.display().to_string(),
        "executable": r.executable,
        "started_unix_ms": r.started_unix_ms,
        "uptime_s": uptime_s(r),
        "version": r.version,
        "transports": r.transports,
        "groups": r.groups,
        "peers": r.peers.iter().map(peer_json).collect::<Vec<_>>(),
        "subscriptions": r.subscriptions.iter().map(type_json).collect::<Vec<_>>(),
        "traffic": r.traffic.iter().map(|t| json!({
            "id": hex(t.event.id),
            "name": t.event.name,
            "sent": t.sent,
            "bytes_sent": t.bytes_sent,
            "received": t.received,
            "bytes_received": t.bytes_received,
            "dropped_full": t.dropped_full,
        })).collect::<Vec<_>>(),
        "pending": r.pending.iter().map(|p| json!({
            "id": hex(p.event.id),
            "name": p.event.name,
            "age_ms": p.age_ms,
            "targets": p.targets,
        })).collect::<Vec<_>>(),
        "observers": r.observers,
        "taps": r.taps,
        "refused": r.refused.iter().map(|(name, reason)| json!({"name": name, "reason": reason})).collect::<Vec<_>>(),
    })
}

fn info_text(r: &Report) -> String {
    let mut text = format!(
        "{} (pid {}, up {}, lahja {})\n  executable  {}\n  transports  {}\n  groups      {}\n  observers   {} ({} tapping)\n",
        r.name,
        r.pid,
        duration(uptime_s(r)),
        r.version,
        r.executable,
        r.transports.join(", "),
        if r.groups.is_empty() {
            "-".to_owned()
        } else {
            r.groups.join(", ")
        },
        r.observers,
        r.taps,
    );
    let mut peers = Table::new(&[
        "PEER",
        "SINCE",
        "QUEUED",
        "LIMIT",
        "FRAMES IN",
        "BYTES IN",
        "FRAMES OUT",
        "BYTES OUT",
        "SUBS",
    ]);
    for p in &r.peers {
        peers.row(vec![
            p.name.clone(),
            duration(now_ms().saturating_sub(p.connected_unix_ms) / 1000),
            p.queued_bytes.to_string(),
            p.queue_limit.to_string(),
            p.frames_in.to_string(),
            p.bytes_in.to_string(),
            p.frames_out.to_string(),
            p.bytes_out.to_string(),
            p.subscriptions.len().to_string(),
        ]);
    }
    text += &format!("\nPeers ({})\n{}", r.peers.len(), peers.render());
    let mut subs = Table::new(&["SUBSCRIBES TO", "ID"]);
    for t in &r.subscriptions {
        subs.row(vec![type_text(t), hex(t.id)]);
    }
    text += &format!(
        "\nSubscriptions ({})\n{}",
        r.subscriptions.len(),
        subs.render()
    );
    let mut traffic = Table::new(&[
        "TYPE",
        "SENT",
        "BYTES SENT",
        "RECEIVED",
        "BYTES RECEIVED",
        "DROPPED (FULL)",
    ]);
    for t in &r.traffic {
        let name = if t.event.id == 0 {
            "(unregistered)".to_owned()
        } else {
            type_text(&t.event)
        };
        traffic.row(vec![
            name,
            t.sent.to_string(),
            t.bytes_sent.to_string(),
            t.received.to_string(),
            t.bytes_received.to_string(),
            t.dropped_full.to_string(),
        ]);
    }
    text += &format!("\nTraffic\n{}", traffic.render());
    let mut pending = Table::new(&["PENDING REQUEST", "AGE", "WAITING FOR"]);
    for p in &r.pending {
        pending.row(vec![
            type_text(&p.event),
            format!("{} ms", p.age_ms),
            p.targets.join(", "),
        ]);
    }
    text += &format!(
        "\nPending requests ({})\n{}",
        r.pending.len(),
        pending.render()
    );
    if !r.refused.is_empty() {
        let mut refused = Table::new(&["REFUSED", "WHY"]);
        for (name, reason) in &r.refused {
            refused.row(vec![name.clone(), reason.clone()]);
        }
        text += &format!("\n{}", refused.render());
    }
    text
}

/// `lahja info NAME`.
pub(crate) async fn info(dir: &Path, name: &str, out: Output) -> ExitCode {
    let path = dir.join(format!("{name}.sock"));
    let report = match probe::probe(&path).await {
        State::Alive(report) => report,
        State::Stale => {
            return fail(format!(
                "`{name}` is not running ({} is stale or missing)",
                path.display()
            ));
        }
        State::Unreachable(error) => return fail(format!("`{name}` does not answer: {error}")),
    };
    if out.json {
        println!("{}", info_json(&report, &path));
    } else {
        print!("{}", info_text(&report));
    }
    ExitCode::SUCCESS
}

/// What the bus says of one event type.
#[derive(Default)]
struct Seen {
    name: Option<String>,
    subscribers: BTreeSet<String>,
    senders: BTreeSet<String>,
    sent: u64,
    received: u64,
    /// Sent per second over the window, if measured.
    rate: Option<f64>,
}

fn alive(found: Vec<Found>) -> Vec<Report> {
    found
        .into_iter()
        .filter_map(|f| match f.state {
            State::Alive(report) => Some(*report),
            _ => None,
        })
        .collect()
}

/// Sent events per type and endpoint, from a set of reports.
fn sent_by(reports: &[Report]) -> BTreeMap<(u64, String), u64> {
    reports
        .iter()
        .flat_map(|r| {
            r.traffic
                .iter()
                .map(|t| ((t.event.id, r.name.clone()), t.sent))
        })
        .collect()
}

/// `lahja events`.
pub(crate) async fn events(dir: &Path, window: f64, out: Output) -> ExitCode {
    let first = match probe::all(dir).await {
        Ok(found) => alive(found),
        Err(error) => return fail(error),
    };
    let (reports, rates) = if window > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(window)).await;
        let second = match probe::all(dir).await {
            Ok(found) => alive(found),
            Err(error) => return fail(error),
        };
        let before: BTreeMap<String, Report> =
            first.into_iter().map(|r| (r.name.clone(), r)).collect();
        let mut rates: BTreeMap<u64, f64> = BTreeMap::new();
        for report in &second {
            // An endpoint new since the first report has no rate yet.
            let Some(earlier) = crate::live::earlier_life(&before, report) else {
                continue;
            };
            let earlier = sent_by(std::slice::from_ref(earlier));
            for ((id, endpoint), sent) in sent_by(std::slice::from_ref(report)) {
                let was = earlier.get(&(id, endpoint)).copied().unwrap_or(0);
                *rates.entry(id).or_default() += sent.saturating_sub(was) as f64 / window;
            }
        }
        (second, Some(rates))
    } else {
        (first, None)
    };
    let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut note = |t: &TypeName| {
        let entry = seen.entry(t.id).or_default();
        if entry.name.is_none() {
            entry.name = t.name.clone();
        }
    };
    for r in &reports {
        r.subscriptions.iter().for_each(&mut note);
        r.traffic
            .iter()
            .filter(|t| t.event.id != 0)
            .for_each(|t| note(&t.event));
    }
    for r in &reports {
        for t in &r.subscriptions {
            seen.entry(t.id)
                .or_default()
                .subscribers
                .insert(r.name.clone());
        }
        for t in r.traffic.iter().filter(|t| t.event.id != 0) {
            let entry = seen.entry(t.event.id).or_default();
            if t.sent > 0 {
                entry.senders.insert(r.name.clone());
            }
            entry.sent += t.sent;
            entry.received += t.received;
        }
    }
    if let Some(rates) = &rates {
        for (id, entry) in seen.iter_mut() {
            entry.rate = Some(rates.get(id).copied().unwrap_or(0.0));
        }
    }
    let mut rows: Vec<(u64, Seen)> = seen.into_iter().collect();
    rows.sort_by(|a, b| (&a.1.name, a.0).cmp(&(&b.1.name, b.0)));
    if out.json {
        print_lines(rows.iter().map(|(id, s)| {
            json!({
                "name": s.name,
                "id": hex(*id),
                "subscribers": s.subscribers,
                "senders": s.senders,
                "sent": s.sent,
                "received": s.received,
                "rate": s.rate,
            })
        }));
        return ExitCode::SUCCESS;
    }
    let mut table = Table::new(&["TYPE", "ID", "SUBSCRIBERS", "SENDERS", "SENT", "RATE/S"]);
    for (id, s) in &rows {
        let list = |set: &BTreeSet<String>| {
            if set.is_empty() {
                "-".to_owned()
            } else {
                set.iter().cloned().collect::<Vec<_>>().join(",")
            }
        };
        table.row(vec![
            s.name.clone().unwrap_or_else(|| "(unknown)".into()),
            hex(*id),
            list(&s.subscribers),
            list(&s.senders),
            s.sent.to_string(),
            s.rate.map_or("-".into(), |r| format!("{r:.1}")),
        ]);
    }
    print!("{}", table.render());
    ExitCode::SUCCESS
}

/// A queue at 90% of its bound: the next large event would not fit, so
/// its peer is not keeping up.
fn nearly_full(peer: &PeerReport) -> bool {
    peer.queue_limit > 0 && u128::from(peer.queued_bytes) * 10 >= u128::from(peer.queue_limit) * 9
}

/// The verdict of `lahja check`.
fn verdict(dir: &Path, found: &[Found], names: &[String]) -> (u8, String) {
    let live: Vec<&Report> = found
        .iter()
        .filter_map(|f| match &f.state {
            State::Alive(r) => Some(&**r),
            _ => None,
        })
        .collect();
    for name in names {
        if !live.iter().any(|r| r.name == *name) {
            let why = match found.iter().find(|f| f.name == *name).map(|f| &f.state) {
                Some(State::Unreachable(error)) => format!("does not answer ({error})"),
                Some(_) => "is stale".to_owned(),
                None => "is not running".to_owned(),
            };
            return (2, format!("down: `{name}` {why}"));
        }
    }
    if live.is_empty() {
        return (2, format!("down: no endpoint answers in {}", dir.display()));
    }
    let mut problems = Vec::new();
    for f in found {
        match &f.state {
            State::Stale => problems.push(format!("`{}` left a stale socket", f.name)),
            State::Unreachable(error) => {
                problems.push(format!("`{}` does not answer ({error})", f.name))
            }
            State::Alive(_) => {}
        }
    }
    for r in &live {
        for p in r.peers.iter().filter(|p| nearly_full(p)) {
            problems.push(format!(
                "`{}`'s queue to `{}` is full ({} of {} bytes)",
                r.name, p.name, p.queued_bytes, p.queue_limit
            ));
        }
    }
    match problems.is_empty() {
        true => (0, format!("healthy: {} endpoints answer", live.len())),
        false => (1, format!("degraded: {}", problems.join("; "))),
    }
}

/// `lahja check`.
pub(crate) async fn check(dir: &Path, names: &[String], out: Output) -> ExitCode {
    let found = probe::all(dir).await.unwrap_or_default();
    let (code, reason) = verdict(dir, &found, names);
    if out.json {
        let status = ["healthy", "degraded", "down"][code as usize];
        println!(
            "{}",
            json!({"status": status, "code": code, "reason": reason})
        );
    } else {
        println!("{reason}");
    }
    ExitCode::from(code)
}

/// `lahja clean`.
pub(crate) fn clean(dir: &Path, out: Output) -> ExitCode {
    let sockets = match probe::sockets(dir) {
        Ok(sockets) => sockets,
        Err(error) => return fail(format!("cannot read {}: {error}", dir.display())),
    };
    let mut failed = false;
    for (_, path) in sockets {
        match lahja::introspect::remove_stale_socket(&path) {
            Ok(true) if out.json => println!(
                "{}",
                json!({"path": path.display().to_string(), "removed": true})
            ),
            Ok(true) => println!("removed {}", path.display()),
            Ok(false) => {}
            Err(error) => {
                failed = true;
                eprintln!("lahja: cannot remove {}: {error}", path.display());
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
