//! The benchmark still runs: a tiny configuration of every mode must
//! complete with every consumer receiving every event in order (the
//! benchmark exits non-zero otherwise). No timing is asserted.
//! It uses the example binary that `cargo test` already built.

use crate::support;

/// The example binary `cargo test` built beside this test binary.
fn benchmark() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    profile.join("examples").join("perf_benchmark")
}

#[tokio::test]
async fn every_mode_completes_with_nothing_lost() {
    let output = support::within(
        "the benchmark",
        tokio::process::Command::new(benchmark())
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

/// The payload sweep (up to 16 MiB events) and the mesh run, and the
/// plots are drawn.
#[tokio::test]
async fn the_sweeps_complete_and_the_plots_are_drawn() {
    let folder = support::TempDir::new();
    let plots = folder.0.join("plots");
    for mode in ["payloads", "mesh"] {
        let output = support::within(
            "the benchmark",
            tokio::process::Command::new(benchmark())
                .args([
                    "--mode", mode, "--events", "3", "--repeat", "1", "--pin", "same",
                ])
                .arg("--plots")
                .arg(&plots)
                .arg("--json")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("run perf_benchmark");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{mode} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = match mode {
            "payloads" => "\"mode\":\"payload 16 MiB\"",
            _ => "\"mode\":\"mesh of 50\"",
        };
        assert!(stdout.contains(expected), "no {expected} in:\n{stdout}");
    }
    let drawn = std::fs::read_to_string(plots.join("payload-throughput.svg")).expect("a plot");
    assert!(
        drawn.starts_with("<svg") && drawn.contains("polyline"),
        "{drawn:.200}"
    );
}
