//! A child process that cannot outlive the test process: killed on drop, and by a watchdog shell
//! when the test process ends without dropping it (a `static`, a panic, a kill).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result};

/// A guarded child process whose stdout and stderr go to a log file.
pub struct Process {
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with output to `log`. When `cleanup` is given, the watchdog also removes that
    /// folder once the test process is gone.
    pub fn spawn(cmd: &mut Command, log: &Path, cleanup: Option<&Path>) -> Result<Process> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        let script = r#"parent=$1; pid=$2; dir=$3
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill "$pid" 2>/dev/null; sleep 2; kill -9 "$pid" 2>/dev/null
[ -n "$dir" ] && rm -rf "$dir""#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("usher-test-watchdog")
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .arg(cleanup.map(|d| d.as_os_str()).unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the test watchdog (sh)")?;
        Ok(Process {
            child,
            watchdog: Some(watchdog),
            log: log.to_owned(),
        })
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
