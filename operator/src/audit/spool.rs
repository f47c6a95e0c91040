//! The HTTP sink's spool (`USHER_AUDIT_SPOOL`, a directory): the records not yet delivered, on
//! disk, so that a restart while the collector is down loses none. Records are appended to
//! `pending.jsonl` as they arrive; `delivered` holds the byte offset up to which the collector
//! has taken them (replaced atomically after each batch it takes); once all are delivered, the
//! file starts afresh. Delivery is at least once: a crash between a batch taken and its offset
//! written sends that batch again (each record's `id` tells the copies apart). One process per
//! directory (a lock file says whose it is).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
};

const PENDING: &str = "pending.jsonl";
const DELIVERED: &str = "delivered";
const LOCK: &str = "lock";

/// A record waiting for the collector: its JSON, and where its line ends in the spool (`None`
/// when it could not be written there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The record, as JSON.
    pub json: String,
    /// The spool offset just past its line.
    pub end: Option<u64>,
}

/// An open spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    file: File,
    len: u64,
    delivered: u64,
    /// Appended since the last sync.
    unsynced: bool,
    _lock: File,
}

impl Spool {
    /// Opens the spool in `dir` (made if missing) and reads what it holds undelivered; a line
    /// cut short by a crash is dropped (and cut off the file).
    pub fn open(dir: &Path) -> io::Result<(Spool, Vec<Pending>)> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        lock.try_lock().map_err(|_| {
            io::Error::other(format!(
                "{} is in use by another process: each process needs a spool of its own",
                dir.display()
            ))
        })?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(dir.join(PENDING))?;
        let mut all = Vec::new();
        file.read_to_end(&mut all)?;
        let complete = all.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < all.len() {
            file.set_len(complete as u64)?;
        }
        let delivered = fs::read_to_string(dir.join(DELIVERED))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|d| *d <= complete as u64)
            .unwrap_or(0);
        let pending = lines_after(&all[..complete], delivered);
        file.seek(SeekFrom::End(0))?;
        let spool = Spool {
            dir: dir.to_owned(),
            file,
            len: complete as u64,
            delivered,
            unsynced: false,
            _lock: lock,
        };
        Ok((spool, pending))
    }

    /// Appends `json` (one record); where its line ends.
    pub fn append(&mut self, json: &str) -> io::Result<u64> {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.len += line.len() as u64;
        self.unsynced = true;
        Ok(self.len)
    }

    /// Makes what was appended durable (before it is sent: a crash after a send must not
    /// find the record missing), on a blocking thread.
    pub async fn sync(&mut self) -> io::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        let file = self.file.try_clone()?;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(io::Error::other)??;
        self.unsynced = false;
        Ok(())
    }

    /// Records that the collector took everything up to `end`; with nothing left, the file
    /// starts afresh.
    pub fn delivered(&mut self, end: u64) -> io::Result<()> {
        if end <= self.delivered {
            return Ok(());
        }
        if end >= self.len {
            self.file.set_len(0)?;
            self.len = 0;
            self.delivered = 0;
        } else {
            self.delivered = end;
        }
        let tmp = self.dir.join(format!("{DELIVERED}.tmp"));
        fs::write(&tmp, self.delivered.to_string())?;
        fs::rename(tmp, self.dir.join(DELIVERED))
    }
}

/// The records of `spool` (complete lines) past `offset`, each with where its line ends.
fn lines_after(spool: &[u8], offset: u64) -> Vec<Pending> {
    let mut out = Vec::new();
    let mut start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(spool.len());
    while let Some(i) = spool[start..].iter().position(|b| *b == b'\n') {
        let end = start + i + 1;
        if let Ok(json) = std::str::from_utf8(&spool[start..end - 1])
            && serde_json::from_str::<serde_json::Value>(json).is_ok()
        {
            out.push(Pending {
                json: json.to_owned(),
                end: Some(end as u64),
            });
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn jsons(p: &[Pending]) -> Vec<&str> {
        p.iter().map(|p| p.json.as_str()).collect()
    }

    #[tokio::test]
    async fn what_was_not_delivered_is_there_after_a_restart_and_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, pending) = Spool::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        let one = spool.append(r#"{"n":1}"#).unwrap();
        spool.append(r#"{"n":2}"#).unwrap();
        spool.append(r#"{"n":3}"#).unwrap();
        spool.sync().await.unwrap();
        spool.delivered(one).unwrap();
        // A second process cannot use it while this one does.
        assert!(Spool::open(dir.path()).is_err());
        drop(spool);

        let (mut spool, pending) = Spool::open(dir.path()).unwrap();
        assert_eq!(jsons(&pending), [r#"{"n":2}"#, r#"{"n":3}"#]);
        // Everything delivered: the file starts afresh, and a restart finds nothing.
        spool.delivered(pending[1].end.unwrap()).unwrap();
        assert_eq!(fs::metadata(dir.path().join(PENDING)).unwrap().len(), 0);
        let end = spool.append(r#"{"n":4}"#).unwrap();
        assert_eq!(end, 8);
        drop(spool);
        let (_, pending) = Spool::open(dir.path()).unwrap();
        assert_eq!(jsons(&pending), [r#"{"n":4}"#]);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(PENDING), "{\"n\":1}\n{\"n\":2}\n{\"n\"").unwrap();
        let (mut spool, pending) = Spool::open(dir.path()).unwrap();
        assert_eq!(jsons(&pending), [r#"{"n":1}"#, r#"{"n":2}"#]);
        spool.append(r#"{"n":3}"#).unwrap();
        drop(spool);
        let (_, pending) = Spool::open(dir.path()).unwrap();
        assert_eq!(jsons(&pending), [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    }
}
