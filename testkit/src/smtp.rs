//! A real SMTP server for tests: Debian's `python3-aiosmtpd`, writing each message to a Maildir.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{Process, free_port};

/// The Python that has Debian's aiosmtpd (not a pyenv shim earlier on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// An SMTP sink on 127.0.0.1. Messages land in `<dir>/mail/new/`.
pub struct SmtpSink {
    port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl SmtpSink {
    /// Starts aiosmtpd on a free port.
    pub async fn start() -> Result<SmtpSink> {
        let dir = tempfile::Builder::new()
            .prefix("usher-smtp-")
            .tempdir()?
            .keep();
        let port = free_port()?;
        let mut sink = SmtpSink {
            port,
            dir,
            process: None,
        };
        sink.spawn()?;
        Ok(sink)
    }

    fn spawn(&mut self) -> Result<()> {
        let ok = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!(
                "aiosmtpd is missing: install it with `apt-get install python3-aiosmtpd` (scripts/install-deps.sh)"
            );
        }
        let process = Process::spawn(
            Command::new(PYTHON).args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                &self.dir.join("mail").to_string_lossy(),
            ]),
            &self.dir.join("aiosmtpd.log"),
            Some(&self.dir),
        )?;
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("aiosmtpd did not listen on port {}", self.port)
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (to test an SMTP outage); [`SmtpSink::restart`] brings it back on the
    /// same port with the same mailbox.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the server again after [`SmtpSink::stop`].
    pub fn restart(&mut self) -> Result<()> {
        self.spawn()
    }

    /// Every message received so far, raw (RFC 5322), oldest first.
    pub fn messages(&self) -> Result<Vec<String>> {
        read_maildir(&self.dir.join("mail"))
    }

    /// Every message received so far, parsed, oldest first.
    pub fn emails(&self) -> Result<Vec<crate::Email>> {
        Ok(self
            .messages()?
            .iter()
            .map(|m| crate::Email::parse(m))
            .collect())
    }

    /// The emails sent to `address`, oldest first.
    pub fn emails_to(&self, address: &str) -> Result<Vec<crate::Email>> {
        Ok(self
            .emails()?
            .into_iter()
            .filter(|e| e.to == address)
            .collect())
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages()?;
            if msgs.len() >= n || Instant::now() > deadline {
                return Ok(msgs);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn read_maildir(dir: &Path) -> Result<Vec<String>> {
    let new = dir.join("new");
    if !new.is_dir() {
        return Ok(Vec::new());
    }
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|(_, p)| {
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        })
        .collect()
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.process = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
