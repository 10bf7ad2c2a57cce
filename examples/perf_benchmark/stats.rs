//! Clocks, percentiles, and the `RESULT key=value ...` lines that role
//! processes report with.

use std::collections::BTreeMap;

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// p-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The points of the latency distribution that plots draw, in percent.
pub const QUANTILES: [f64; 17] = [
    0.1, 1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9,
    100.0,
];

/// Latency summary in microseconds.
pub struct Latency {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// At each of [`QUANTILES`].
    pub quantiles_us: Vec<f64>,
}

impl Latency {
    pub fn of(mut samples_ns: Vec<u64>) -> Latency {
        samples_ns.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50_us: us(percentile(&samples_ns, 50.0)),
            p90_us: us(percentile(&samples_ns, 90.0)),
            p99_us: us(percentile(&samples_ns, 99.0)),
            max_us: us(samples_ns.last().copied().unwrap_or(0)),
            quantiles_us: QUANTILES
                .iter()
                .map(|&q| us(percentile(&samples_ns, q)))
                .collect(),
        }
    }
}

/// This process's peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib() -> u64 {
    status_field("VmHWM:")
}

/// This process's resident set size (VmRSS) in KiB.
pub fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Prints the one line a role process reports with.
pub fn report(fields: &[(&str, String)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", body.join(" "));
}

/// Parses a `RESULT` line.
pub fn parse_report(line: &str) -> Option<BTreeMap<String, String>> {
    let rest = line.strip_prefix("RESULT ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// CPU time (user + system) this process has used, in microseconds.
pub fn cpu_us() -> f64 {
    // SAFETY: an all-zero rusage is a valid value to write into.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write into.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Keeps this thread (and the threads it starts later) on CPU `cpu`.
pub fn pin_to(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays in
    // bounds for any cpu below CPU_SETSIZE, which the modulo ensures.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % libc::CPU_SETSIZE as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            eprintln!("perf_benchmark: could not pin to CPU {cpu}");
        }
    }
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// What a request client reports: its rate, latency, and CPU per request.
pub fn report_client(rate: f64, latency: Option<&Latency>, cpu_us_per_request: f64) {
    let mut fields = vec![
        ("per_s", format!("{rate:.1}")),
        ("cpu_us_per_request", format!("{cpu_us_per_request:.3}")),
    ];
    if let Some(latency) = latency {
        fields.extend([
            ("p50_us", format!("{:.2}", latency.p50_us)),
            ("p90_us", format!("{:.2}", latency.p90_us)),
            ("p99_us", format!("{:.2}", latency.p99_us)),
            ("max_us", format!("{:.2}", latency.max_us)),
        ]);
        let quantiles: Vec<String> = latency
            .quantiles_us
            .iter()
            .map(|q| format!("{q:.2}"))
            .collect();
        fields.push(("quantiles_us", quantiles.join(";")));
    }
    report(&fields);
}

/// `len` pseudo-random bytes (xorshift, fixed seed): a body snappy cannot
/// shrink, so compression neither cheats nor hides.
pub fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
