//! The benchmark still runs: a tiny configuration of every mode must
//! complete with every consumer receiving every event in order (the
//! benchmark exits non-zero otherwise). No timing is asserted.
//! It uses the example binary that `cargo test` already built.

use crate::support;

#[tokio::test]
async fn every_mode_completes_with_nothing_lost() {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let benchmark = deps
        .parent()
        .unwrap()
        .join("examples")
        .join("perf_benchmark");
    let output = support::within(
        "the benchmark",
        tokio::process::Command::new(&benchmark)
            .args([
                "--mode",
                "all",
                "--events",
                "1000",
                "--consumers",
                "3",
                "--repeat",
                "2",
                "--json",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run perf_benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "benchmark failed:\n{stdout}\n{stderr}"
    );
    for mode in [
        "broadcast x3",
        "roundtrip",
        "request x64",
        "local",
        "stalled",
    ] {
        assert!(
            stdout.contains(&format!("\"mode\":\"{mode}\"")),
            "no {mode} result in:\n{stdout}"
        );
    }
    // Both placements, each figure once per repetition.
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    for pin in ["same", "split"] {
        let roundtrip = rows
            .iter()
            .find(|row| row["mode"] == "roundtrip" && row["pin"] == pin)
            .unwrap_or_else(|| panic!("no roundtrip on {pin} CPUs in:\n{stdout}"));
        assert_eq!(
            roundtrip["lahja_runs"].as_array().map(Vec::len),
            Some(2),
            "two repetitions in {roundtrip}"
        );
        assert_eq!(roundtrip["baseline_runs"].as_array().map(Vec::len), Some(2));
    }
}
