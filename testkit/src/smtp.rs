//! A real SMTP server for tests: Debian's `python3-aiosmtpd`, writing each message to a Maildir.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{Process, free_port};

/// The Python that has Debian's aiosmtpd (not a pyenv shim earlier on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// How the sink protects connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text.
    None,
    /// STARTTLS, required by the server.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// An SMTP sink on 127.0.0.1. Messages land in `<dir>/mail/new/`.
pub struct SmtpSink {
    port: u16,
    dir: PathBuf,
    tls: SmtpTls,
    process: Option<Process>,
}

impl SmtpSink {
    /// Starts aiosmtpd on a free port.
    pub async fn start() -> Result<SmtpSink> {
        Self::start_tls(SmtpTls::None, None).await
    }

    /// Starts aiosmtpd with TLS, serving `cert` (certificate PEM, key PEM).
    pub async fn start_tls(tls: SmtpTls, cert: Option<(&str, &str)>) -> Result<SmtpSink> {
        let dir = tempfile::Builder::new()
            .prefix("usher-smtp-")
            .tempdir()?
            .keep();
        if let Some((cert, key)) = cert {
            std::fs::write(dir.join("tls.crt"), cert)?;
            std::fs::write(dir.join("tls.key"), key)?;
        }
        let port = free_port()?;
        let mut sink = SmtpSink {
            port,
            dir,
            tls,
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
        let mut cmd = Command::new(PYTHON);
        cmd.args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{}", self.port),
        ]);
        let (crt, key) = (self.dir.join("tls.crt"), self.dir.join("tls.key"));
        match self.tls {
            SmtpTls::None => {}
            SmtpTls::StartTls => {
                cmd.arg("--tlscert").arg(&crt).arg("--tlskey").arg(&key);
            }
            SmtpTls::Implicit => {
                cmd.arg("--smtpscert").arg(&crt).arg("--smtpskey").arg(&key);
            }
        }
        // The handler and its argument go last.
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.dir.join("mail"));
        let process = Process::spawn(&mut cmd, &self.dir.join("aiosmtpd.log"), Some(&self.dir))?;
        self.process = Some(process);
        let port = self.port;
        let listening = crate::poll_blocking(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        if listening.is_none() {
            bail!("aiosmtpd did not listen on port {port}")
        }
        Ok(())
    }

    /// `smtp://127.0.0.1:<port>` (with `?tls=required` for STARTTLS, `smtps://` for SMTPS).
    pub fn url(&self) -> String {
        match self.tls {
            SmtpTls::None => format!("smtp://127.0.0.1:{}", self.port),
            SmtpTls::StartTls => format!("smtp://127.0.0.1:{}?tls=required", self.port),
            SmtpTls::Implicit => format!("smtps://127.0.0.1:{}", self.port),
        }
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
        crate::poll(timeout, || async {
            self.messages().ok().filter(|m| m.len() >= n)
        })
        .await;
        self.messages()
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
