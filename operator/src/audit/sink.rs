//! Where audit records go (`USHER_AUDIT_SINK`): `stdout` (the default: one JSON line each,
//! beside the logs on stderr), a file path (JSON lines, appended), or an `https://` URL (or
//! `http://` to a loopback collector) receiving JSON arrays, batched, retried with backoff while
//! it is down, from a bounded buffer (kept on disk too with `USHER_AUDIT_SPOOL`: `spool`). A
//! request never waits for the sink: records go through a bounded queue to one writer task,
//! which keeps their order; what must be dropped (the queue or the buffer full) is counted in
//! `usher_audit_dropped_total` and logged.

use std::{collections::VecDeque, path::PathBuf, time::Duration};

use prometheus_client::metrics::counter::Counter;
use tokio::{io::AsyncWriteExt, sync::mpsc};

use super::{
    record::Record,
    spool::{Pending, Spool},
};

/// Records waiting for the writer task.
const QUEUE: usize = 10_000;
/// Records an HTTP sink keeps while its collector is down.
const BUFFER: usize = 50_000;
/// Most records per POST.
const BATCH: usize = 500;
/// How long records wait to fill a batch.
const LINGER: Duration = Duration::from_millis(200);
/// First wait after a failed POST, doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A configured sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// One JSON line per record on stdout.
    Stdout,
    /// JSON lines appended to a file.
    File(PathBuf),
    /// JSON arrays POSTed to a collector; what it has not taken yet kept in `spool` (a
    /// directory) too, when set.
    Http {
        url: url::Url,
        spool: Option<PathBuf>,
    },
    /// Nowhere (`off`): for measuring what the trail costs; never for a platform.
    Off,
}

impl Sink {
    /// Reads `USHER_AUDIT_SINK` and `USHER_AUDIT_SPOOL` (empty: none).
    pub fn parse(value: &str, spool: Option<&str>) -> Result<Sink, String> {
        let sink = Sink::parse_sink(value)?;
        match (sink, spool.map(str::trim).filter(|s| !s.is_empty())) {
            (sink, None) => Ok(sink),
            (Sink::Http { url, .. }, Some(dir)) if dir.starts_with('/') => Ok(Sink::Http {
                url,
                spool: Some(PathBuf::from(dir)),
            }),
            (Sink::Http { .. }, Some(dir)) => Err(format!(
                "USHER_AUDIT_SPOOL must be an absolute directory path, not {dir:?}"
            )),
            (_, Some(_)) => Err(
                "USHER_AUDIT_SPOOL is for an https:// (or loopback http://) sink: the other sinks write at once".into(),
            ),
        }
    }

    fn parse_sink(value: &str) -> Result<Sink, String> {
        let v = value.trim();
        if v.is_empty() || v == "stdout" {
            return Ok(Sink::Stdout);
        }
        if v == "off" {
            return Ok(Sink::Off);
        }
        if v.starts_with("https://") || v.starts_with("http://") {
            let url = url::Url::parse(v).map_err(|e| format!("USHER_AUDIT_SINK: {e}"))?;
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                None => false,
            };
            if url.scheme() == "http" && !loopback {
                return Err(
                    "USHER_AUDIT_SINK: http:// only to a loopback collector (a sidecar); use https:// for one elsewhere".into(),
                );
            }
            return Ok(Sink::Http { url, spool: None });
        }
        if v.starts_with('/') {
            return Ok(Sink::File(PathBuf::from(v)));
        }
        Err(format!(
            "USHER_AUDIT_SINK must be stdout, an absolute file path, or an https:// URL, not {v:?}"
        ))
    }
}

/// A fresh record id.
pub fn new_id() -> String {
    crate::crypto::random_bytes::<12>()
        .map(|b| crate::crypto::hex(&b))
        .unwrap_or_default()
}

enum Msg {
    Record(Box<Record>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// `usher_audit_dropped_total`: one for the process, whatever its sink (each process's metrics
/// registry shows it).
pub fn dropped_total() -> Counter {
    static DROPPED: std::sync::LazyLock<Counter> = std::sync::LazyLock::new(Counter::default);
    DROPPED.clone()
}

/// Sends records to the sink; cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    dropped: Counter,
}

impl Auditor {
    /// Starts the writer task of `sink` (inside a Tokio runtime).
    pub fn start(sink: Sink) -> Auditor {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = dropped_total();
        tokio::spawn(write(sink, rx, dropped.clone()));
        Auditor { tx, dropped }
    }

    /// The sink `USHER_AUDIT_SINK` names (stdout when unset), with `USHER_AUDIT_SPOOL`.
    pub fn from_env() -> Result<Auditor, String> {
        let sink = Sink::parse(
            &std::env::var("USHER_AUDIT_SINK").unwrap_or_default(),
            std::env::var("USHER_AUDIT_SPOOL").ok().as_deref(),
        )?;
        Ok(Auditor::start(sink))
    }

    /// Queues `record`; never waits. A full queue drops it (counted, logged).
    pub fn record(&self, record: Record) {
        if let Err(e) = self.tx.try_send(Msg::Record(Box::new(record))) {
            self.dropped.inc();
            let action = match &e {
                mpsc::error::TrySendError::Full(Msg::Record(r))
                | mpsc::error::TrySendError::Closed(Msg::Record(r)) => r.action.as_str(),
                _ => "",
            };
            tracing::warn!(
                action,
                "an audit record was dropped: the audit queue is full"
            );
        }
    }

    /// Waits (at most `within`) until every record queued so far is written (or, for an HTTP
    /// sink, delivered or buffered).
    pub async fn flush(&self, within: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
    }
}

async fn write(sink: Sink, rx: mpsc::Receiver<Msg>, dropped: Counter) {
    match sink {
        Sink::Stdout => lines(tokio::io::stdout(), rx).await,
        Sink::File(path) => {
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
            {
                Ok(f) => lines(f, rx).await,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the audit file: records go to stdout");
                    lines(tokio::io::stdout(), rx).await;
                }
            }
        }
        Sink::Http { url, spool } => {
            let (spool, waiting) = match spool.as_deref().map(Spool::open).transpose() {
                Ok(Some((spool, waiting))) => {
                    if !waiting.is_empty() {
                        tracing::info!(
                            records = waiting.len(),
                            "audit records not yet delivered before a restart are sent first"
                        );
                    }
                    (Some(spool), waiting)
                }
                Ok(None) => (None, Vec::new()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the audit spool: undelivered records are kept in memory only");
                    (None, Vec::new())
                }
            };
            post(url, rx, dropped, spool, waiting).await;
        }
        Sink::Off => lines(tokio::io::sink(), rx).await,
    }
}

async fn lines<W: tokio::io::AsyncWrite + Unpin>(mut out: W, mut rx: mpsc::Receiver<Msg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Record(r) => {
                let mut line = serde_json::to_vec(&r).unwrap_or_default();
                line.push(b'\n');
                if let Err(e) = out.write_all(&line).await {
                    tracing::error!(error = %e, action = r.action.as_str(), "cannot write an audit record");
                }
            }
            Msg::Flush(done) => {
                let _ = out.flush().await;
                let _ = done.send(());
            }
        }
    }
    let _ = out.flush().await;
}

async fn post(
    url: url::Url,
    mut rx: mpsc::Receiver<Msg>,
    dropped: Counter,
    mut spool: Option<Spool>,
    waiting: Vec<Pending>,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the audit HTTP client");
            return;
        }
    };
    let mut buffer: VecDeque<Pending> = waiting.into();
    let mut flushes: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    let mut failures = 0u32;
    let mut open = true;
    loop {
        // Take what is queued: wait for the first when nothing is buffered, then linger a
        // moment for a batch; while the collector is down, wait out the backoff meanwhile.
        let now = tokio::time::Instant::now();
        let mut deadline = if failures > 0 {
            Some(
                now + FIRST_BACKOFF
                    .saturating_mul(1 << (failures - 1).min(10))
                    .min(MAX_BACKOFF),
            )
        } else if buffer.is_empty() {
            None
        } else {
            Some(now + LINGER)
        };
        while open && (failures > 0 || buffer.len() < BATCH) {
            let msg = match deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => break,
                },
                None => rx.recv().await,
            };
            match msg {
                Some(Msg::Record(r)) => {
                    let json = serde_json::to_string(&r).unwrap_or_default();
                    let end = spool.as_mut().and_then(|s| {
                        s.append(&json)
                            .map_err(|e| tracing::error!(error = %e, action = r.action.as_str(), "cannot spool an audit record: it is kept in memory only"))
                            .ok()
                    });
                    buffer.push_back(Pending { json, end });
                    if buffer.len() > BUFFER {
                        let lost = buffer.pop_front();
                        delivered(&mut spool, lost.as_ref());
                        dropped.inc();
                        tracing::warn!(
                            "an audit record was dropped: the collector has been down too long"
                        );
                    }
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                }
                Some(Msg::Flush(done)) => {
                    flushes.push(done);
                    break;
                }
                None => open = false,
            }
        }
        if let Some(s) = spool.as_mut()
            && let Err(e) = s.sync().await
        {
            tracing::error!(error = %e, "cannot sync the audit spool");
        }
        while !buffer.is_empty() {
            let n = buffer.len().min(BATCH);
            let sent = http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(array(buffer.iter().take(n)))
                .send()
                .await;
            match sent {
                Ok(res) if res.status().is_success() => {
                    let last = buffer.drain(..n).next_back();
                    delivered(&mut spool, last.as_ref());
                    failures = 0;
                }
                other => {
                    failures = failures.saturating_add(1);
                    let why = match other {
                        Ok(res) => format!("it answered {}", res.status()),
                        Err(e) if e.is_timeout() => "timed out".into(),
                        Err(_) => "cannot reach it".into(),
                    };
                    tracing::warn!(error = %why, kept = buffer.len(), "the audit collector did not take a batch; retrying");
                    break;
                }
            }
        }
        if buffer.is_empty() || !open {
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
        if !open && (buffer.is_empty() || failures > 8) {
            return;
        }
    }
}

/// A JSON array of `records`.
fn array<'a>(records: impl Iterator<Item = &'a Pending>) -> String {
    let mut body = String::from("[");
    for (i, p) in records.enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&p.json);
    }
    body.push(']');
    body
}

/// Marks the spool delivered up to `last` (taken by the collector, or dropped).
fn delivered(spool: &mut Option<Spool>, last: Option<&Pending>) {
    if let (Some(s), Some(end)) = (spool.as_mut(), last.and_then(|p| p.end))
        && let Err(e) = s.delivered(end)
    {
        tracing::error!(error = %e, "cannot record audit records as delivered in the spool: they may be sent again after a restart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_is_stdout_a_file_or_a_collector_and_plain_http_only_on_loopback() {
        assert_eq!(Sink::parse("", None), Ok(Sink::Stdout));
        assert_eq!(Sink::parse("stdout", None), Ok(Sink::Stdout));
        assert_eq!(
            Sink::parse("/var/log/usher/audit.jsonl", None),
            Ok(Sink::File("/var/log/usher/audit.jsonl".into()))
        );
        assert!(matches!(
            Sink::parse("https://collector.example/audit", None),
            Ok(Sink::Http { spool: None, .. })
        ));
        assert!(matches!(
            Sink::parse(
                "http://127.0.0.1:8686/audit",
                Some("/var/spool/usher-audit")
            ),
            Ok(Sink::Http { spool: Some(_), .. })
        ));
        assert!(Sink::parse("http://collector.example/audit", None).is_err());
        assert!(Sink::parse("audit.log", None).is_err());
        // A spool only where records wait, at an absolute path.
        assert!(Sink::parse("stdout", Some("/var/spool/usher-audit")).is_err());
        assert!(Sink::parse("https://collector.example/audit", Some("spool")).is_err());
        assert_eq!(Sink::parse("stdout", Some("")), Ok(Sink::Stdout));
    }
}
