//! The fsync thread: the one blocking call the loop must never make itself (SPEC §1).
//!
//! The loop tells the thread what it wrote ([`SyncMsg::Written`]: the file and the last
//! seq in it) and, under `fsync = always`, asks for a sync right away. The thread
//! coalesces everything queued, fsyncs every file written since the last sync (a rolled
//! segment, then the active one, plus the directory when a segment was created), then
//! reports the covered seq back and calls `wake` so the loop collects it. Under
//! `interval` it also syncs on its own every `fsync_interval_ms`; under `never` only on
//! an explicit request (shutdown), and each sealed segment once (below).
//!
//! Once a sealed segment is synced, the thread also keeps the log from filling the OS
//! page cache: the newest `page_cache_bytes` of sealed segments stay cached (history and
//! resumes mostly read the tail); older ones are dropped from the cache with
//! `posix_fadvise(DONTNEED)`. Without this a log written at full speed grows the page
//! cache until the kernel must reclaim, and appends slowed to half here after ~5 GB.
//! Dirty pages cannot be dropped, so under `never` a sealed segment is synced for this
//! alone (nothing is reported durable by it).
//!
//! An ordinary append does not message the thread: it stores its last seq in a shared
//! atomic (a message and a thread wake-up per append would cost more than the append).
//! Only a new segment file is announced by message, before any seq written to it is
//! stored, and the thread reads the atomic *before* draining its queue, so it never
//! claims a seq durable without having the file that holds it.

use super::fail_points::{FailOp, FailPoints};
use crate::config::FsyncPolicy;
use std::collections::VecDeque;
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
        path: PathBuf,
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

/// Sealed, synced segments still in the page cache, newest last, and their bytes. Paths,
/// not open files: a segment retention deletes meanwhile must not be kept alive.
#[derive(Debug)]
struct CacheWindow {
    limit: u64,
    held: VecDeque<(PathBuf, u64)>,
    bytes: u64,
}

impl CacheWindow {
    fn new(limit: u64) -> Self {
        CacheWindow {
            limit,
            held: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Notes a sealed segment of `len` bytes; returns the segments now beyond the limit,
    /// oldest first.
    fn sealed(&mut self, path: PathBuf, len: u64) -> Vec<PathBuf> {
        self.held.push_back((path, len));
        self.bytes += len;
        let mut out = Vec::new();
        while self.bytes > self.limit {
            let Some((p, l)) = self.held.pop_front() else {
                break;
            };
            self.bytes -= l;
            out.push(p);
        }
        out
    }

    /// A sealed segment is on disk: note it, and drop what now falls out of the window.
    fn synced(&mut self, f: &File, path: PathBuf) {
        let len = f.metadata().map_or(0, |m| m.len());
        for old in self.sealed(path, len) {
            drop_cached(&old);
        }
    }
}

/// Drops a synced file's pages from the page cache. Advisory: a file already deleted,
/// or a filesystem that ignores the advice, changes nothing.
fn drop_cached(path: &std::path::Path) {
    if let Ok(f) = File::open(path) {
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
    }
}

struct Worker {
    dir: PathBuf,
    dirty: Vec<(Arc<File>, PathBuf)>,
    cache: CacheWindow,
    dir_dirty: bool,
    written: u64,
    durable: u64,
    done: Sender<SyncDone>,
    wake: Box<dyn Fn() + Send>,
    faults: FailPoints,
}

/// An fsync error that names what failed: the loop turns it into a health reason.
fn sync_file(f: &File, path: &std::path::Path, faults: &FailPoints) -> std::io::Result<()> {
    faults
        .check(FailOp::Fsync)
        .and_then(|()| f.sync_data())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Worker {
    /// Under `never`: syncs each sealed segment once, in the background, so the page
    /// cache window can drop it later (dirty pages cannot be dropped). The active file is
    /// left alone and nothing is reported durable; a sealed file that fails to sync stays
    /// listed, so the shutdown sync still covers (and reports) it.
    fn release_sealed(&mut self) {
        if self.dirty.len() < 2 {
            return;
        }
        let active = self.dirty.pop();
        let mut failed = Vec::new();
        for (f, path) in self.dirty.drain(..) {
            if sync_file(&f, &path, &self.faults).is_err() {
                failed.push((f, path));
                continue;
            }
            self.cache.synced(&f, path);
        }
        self.dirty = failed;
        self.dirty.extend(active);
    }

    fn note(&mut self, file: Arc<File>, path: PathBuf, seq: u64, new_file: bool) {
        if !self
            .dirty
            .last()
            .is_some_and(|(f, _)| Arc::ptr_eq(f, &file))
        {
            self.dirty.push((file, path));
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
            for (f, path) in &self.dirty {
                sync_file(f, path, &self.faults)?;
            }
            if self.dir_dirty {
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", self.dir.display()))
                    })?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                // Keep only the active file: earlier ones are complete and synced.
                let keep = self.dirty.pop();
                for (f, path) in self.dirty.drain(..) {
                    self.cache.synced(&f, path);
                }
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
        page_cache_bytes: u64,
        durable: u64,
        wake: Box<dyn Fn() + Send>,
        faults: FailPoints,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<SyncMsg>();
        let (done_tx, done) = mpsc::channel();
        let written = Arc::new(AtomicU64::new(durable));
        let shared = written.clone();
        let mut w = Worker {
            dir,
            dirty: Vec::new(),
            cache: CacheWindow::new(page_cache_bytes),
            dir_dirty: false,
            written: durable,
            durable,
            done: done_tx,
            wake,
            faults,
        };
        let interval = Duration::from_millis(interval_ms.max(1));
        // Off the loop's core when the loop is pinned: an fsync blocks in the kernel, and
        // sharing the core would put its wake-ups in the loop's turns.
        let handle = crate::affinity::spawn_helper("tracecast-fsync", move || {
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
                            path,
                            seq,
                            new_file,
                        }) => w.note(file, path, seq, new_file),
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
                if policy == FsyncPolicy::Never && !stop {
                    w.release_sealed();
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

    /// The last seq recorded written: what a complete sync would now cover.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_policy_releases_sealed_segments_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = |name: &str, len: usize| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![b'x'; len]).unwrap_or_else(|e| panic!("{e}"));
            let f = File::open(&path).unwrap_or_else(|e| panic!("{e}"));
            (Arc::new(f), path)
        };
        let (done, _rx) = mpsc::channel();
        let mut w = Worker {
            dir: dir.path().to_path_buf(),
            dirty: Vec::new(),
            cache: CacheWindow::new(1 << 30),
            dir_dirty: false,
            written: 0,
            durable: 0,
            done,
            wake: Box::new(|| {}),
            faults: FailPoints::default(),
        };
        let (a, pa) = file("a.log", 100);
        w.note(a, pa.clone(), 1, true);
        w.release_sealed();
        // The active file is never touched.
        assert_eq!(w.dirty.len(), 1);
        let (b, pb) = file("b.log", 50);
        w.note(b, pb.clone(), 2, true);
        w.release_sealed();
        assert_eq!(w.dirty.len(), 1);
        assert!(w.dirty.iter().all(|(_, p)| *p == pb));
        // The sealed file was synced into the cache window; nothing was reported durable.
        assert_eq!(w.cache.held, VecDeque::from([(pa, 100)]));
        assert_eq!(w.durable, 0);
    }

    #[test]
    fn cache_window_keeps_the_newest_sealed_bytes() {
        let mut w = CacheWindow::new(250);
        let p = |n: u32| PathBuf::from(format!("{n}.log"));
        assert!(w.sealed(p(1), 100).is_empty());
        assert!(w.sealed(p(2), 100).is_empty());
        assert_eq!(w.sealed(p(3), 100), vec![p(1)]);
        // One segment larger than the whole window pushes everything out, itself too.
        assert_eq!(w.sealed(p(4), 300), vec![p(2), p(3), p(4)]);
        assert_eq!(w.bytes, 0);
        let mut none = CacheWindow::new(0);
        assert_eq!(none.sealed(p(5), 1), vec![p(5)]);
    }
}
