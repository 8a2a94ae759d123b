//! The fsync thread: the one blocking call the loop must never make itself (SPEC §1).
//!
//! The loop tells the thread what it wrote ([`SyncMsg::Written`]: the file and the last
//! seq in it) and, under `fsync = always`, asks for a sync right away. The thread
//! coalesces everything queued, fsyncs every file written since the last sync (a rolled
//! segment, then the active one, plus the directory when a segment was created), then
//! reports the covered seq back and calls `wake` so the loop collects it. Under
//! `interval` it also syncs on its own every `fsync_interval_ms`; under `never` only on
//! an explicit request (shutdown).
//!
//! An ordinary append does not message the thread: it stores its last seq in a shared
//! atomic (a message and a thread wake-up per append would cost more than the append).
//! Only a new segment file is announced by message, before any seq written to it is
//! stored, and the thread reads the atomic *before* draining its queue, so it never
//! claims a seq durable without having the file that holds it.

use crate::config::FsyncPolicy;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) enum SyncMsg {
    /// Bytes up to `seq` were written to `file`; `new_file` marks a just-created segment
    /// (its directory entry needs a sync too).
    Written {
        file: Arc<File>,
        seq: u64,
        new_file: bool,
    },
    /// Sync what was written so far, now.
    SyncNow,
    /// Sync, answer on the given channel, go on.
    Barrier(Sender<std::io::Result<u64>>),
    Shutdown,
}

pub(crate) enum SyncDone {
    Durable(u64),
    Failed(std::io::Error),
}

pub(crate) struct SyncThread {
    pub tx: Sender<SyncMsg>,
    pub done: Receiver<SyncDone>,
    /// The last seq written to the files the thread knows of.
    written: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

struct Worker {
    dir: PathBuf,
    dirty: Vec<Arc<File>>,
    dir_dirty: bool,
    written: u64,
    durable: u64,
    done: Sender<SyncDone>,
    wake: Box<dyn Fn() + Send>,
}

impl Worker {
    fn note(&mut self, file: Arc<File>, seq: u64, new_file: bool) {
        if !self.dirty.last().is_some_and(|f| Arc::ptr_eq(f, &file)) {
            self.dirty.push(file);
        }
        self.written = self.written.max(seq);
        self.dir_dirty |= new_file;
    }

    fn sync(&mut self) -> std::io::Result<u64> {
        if self.written <= self.durable && !self.dir_dirty {
            return Ok(self.durable);
        }
        let upto = self.written;
        let res = (|| -> std::io::Result<()> {
            for f in &self.dirty {
                f.sync_data()?;
            }
            if self.dir_dirty {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                // Keep only the active file: earlier ones are complete and synced.
                let keep = self.dirty.pop();
                self.dirty.clear();
                self.dirty.extend(keep);
                self.dir_dirty = false;
                self.durable = upto;
                let _ = self.done.send(SyncDone::Durable(upto));
            }
            Err(e) => {
                let _ = self.done.send(SyncDone::Failed(std::io::Error::new(
                    e.kind(),
                    e.to_string(),
                )));
                (self.wake)();
                return Err(e);
            }
        }
        (self.wake)();
        Ok(upto)
    }
}

impl SyncThread {
    pub fn start(
        dir: PathBuf,
        policy: FsyncPolicy,
        interval_ms: u64,
        durable: u64,
        wake: Box<dyn Fn() + Send>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<SyncMsg>();
        let (done_tx, done) = mpsc::channel();
        let written = Arc::new(AtomicU64::new(durable));
        let shared = written.clone();
        let mut w = Worker {
            dir,
            dirty: Vec::new(),
            dir_dirty: false,
            written: durable,
            durable,
            done: done_tx,
            wake,
        };
        let interval = Duration::from_millis(interval_ms.max(1));
        let handle = std::thread::Builder::new()
            .name("tracecast-fsync".into())
            .spawn(move || {
                let mut deadline = Instant::now() + interval;
                loop {
                    let msg = if policy == FsyncPolicy::Interval {
                        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                            Ok(m) => Some(m),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => Some(SyncMsg::Shutdown),
                        }
                    } else {
                        Some(rx.recv().unwrap_or(SyncMsg::Shutdown))
                    };
                    // Before draining: see the module doc.
                    let seen = shared.load(Ordering::Acquire);
                    let mut want_sync = msg.is_none();
                    let mut barriers = Vec::new();
                    let mut stop = false;
                    // Coalesce everything already queued into one round of fsyncs.
                    let mut next = msg;
                    loop {
                        match next {
                            Some(SyncMsg::Written {
                                file,
                                seq,
                                new_file,
                            }) => w.note(file, seq, new_file),
                            Some(SyncMsg::SyncNow) => want_sync = true,
                            Some(SyncMsg::Barrier(reply)) => barriers.push(reply),
                            Some(SyncMsg::Shutdown) => stop = true,
                            None => {}
                        }
                        match rx.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(_) => break,
                        }
                    }
                    w.written = w.written.max(seen);
                    if want_sync || stop || !barriers.is_empty() {
                        let res = w.sync();
                        for b in barriers {
                            let _ = b.send(match &res {
                                Ok(s) => Ok(*s),
                                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                            });
                        }
                    }
                    if Instant::now() >= deadline {
                        if policy == FsyncPolicy::Interval && !want_sync {
                            let _ = w.sync();
                        }
                        deadline = Instant::now() + interval;
                    }
                    if stop {
                        return;
                    }
                }
            })?;
        Ok(SyncThread {
            tx,
            done,
            written,
            handle: Some(handle),
        })
    }

    /// Records that everything up to `seq` was written (to a file already announced).
    pub fn note_written(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::Release);
    }

    /// Syncs everything written so far and waits for it (shutdown, tests).
    pub fn barrier(&self) -> std::io::Result<u64> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(SyncMsg::Barrier(tx))
            .map_err(|_| std::io::Error::other("fsync thread gone"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("fsync thread gone"))?
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        let _ = self.tx.send(SyncMsg::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
