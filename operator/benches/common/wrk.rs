//! wrk, the HTTP load generator the benchmarks drive: one run, and a target compared with a
//! baseline in interleaved runs.

use std::process::Command;

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub rps: f64,
    pub p99_ms: f64,
}

pub fn wrk(
    url: &str,
    header: Option<&str>,
    script: Option<&str>,
    seconds: u32,
    connections: u32,
) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    if let Some(s) = script {
        cmd.args(["-s", s]);
    }
    let out = cmd.arg(url).output().unwrap_or_else(|e| {
        panic!("wrk is missing ({e}): apt-get install wrk (scripts/install-deps.sh)")
    });
    let text = String::from_utf8_lossy(&out.stdout);
    // A flood may be answered 503 busy or 429 (that is the point); anything else must succeed.
    let flood = script.is_some_and(|s| s.contains("flood"));
    assert!(
        flood || !text.contains("Non-2xx"),
        "wrk saw errors for {url}:\n{text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency(v.trim()))
        .unwrap_or_else(|| panic!("no 99% in wrk output:\n{text}"));
    Run { rps, p99_ms: p99 }
}

fn parse_latency(v: &str) -> f64 {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// Raw argon2id verifications per second on `threads` threads for `secs`.
/// A target against the baseline: medians of interleaved runs, so drift hits both alike.
pub struct Comparison {
    pub ratio: f64,
    pub target: Run,
    pub base: Run,
}

pub async fn compare(empty: &str, target: &str, header: &str) -> Comparison {
    let mut ratios = Vec::new();
    let mut targets = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let (e, t, h) = (empty.to_owned(), target.to_owned(), header.to_owned());
        let base = tokio::task::spawn_blocking(move || wrk(&e, Some(&h), None, 3, 64))
            .await
            .unwrap();
        let (t2, h2) = (t.clone(), header.to_owned());
        let run = tokio::task::spawn_blocking(move || wrk(&t2, Some(&h2), None, 3, 64))
            .await
            .unwrap();
        ratios.push(run.rps / base.rps);
        targets.push(run);
        bases.push(base);
    }
    let median = |v: &mut Vec<Run>| {
        v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        v[v.len() / 2]
    };
    ratios.sort_by(f64::total_cmp);
    Comparison {
        ratio: ratios[ratios.len() / 2],
        target: median(&mut targets),
        base: median(&mut bases),
    }
}
