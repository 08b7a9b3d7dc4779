//! The spool's writer thread: group commit off the async runtime and off the session lock.
//!
//! Publishers encode records into a queue (memory only, under a lock of its own); the thread
//! takes everything queued, writes each segment's share with one `write`, and then, by the sync
//! policy, calls `fdatasync` once for the batch before it declares the batch accepted
//! (`always`), or declares it accepted once written and syncs at most every interval
//! (`interval`). New and removed segment files and the `state` file are made durable by syncing
//! the folder. A failed write (disk full) is undone (the file cut back to its last good length),
//! reported, and retried every second: nothing queued is dropped, publishers wait.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{SpoolSync, state};

/// Called by the writer thread after a batch: records became readable or accepted.
pub(crate) type Progress = Arc<dyn Fn() + Send + Sync>;

enum Op {
    /// Records for the segment file at `path`, ending before seq `end_seq`.
    Append {
        path: PathBuf,
        data: Vec<u8>,
        end_seq: u64,
    },
    /// A segment that is no longer needed.
    Remove(PathBuf),
}

/// A snapshot of the acknowledgement state to save.
pub(crate) struct StateSnapshot {
    pub low: u64,
    pub next: u64,
    pub acked: std::collections::BTreeSet<u64>,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    state: Option<StateSnapshot>,
    /// Callers waiting in [`Writer::sync`] asked for this many full syncs; `synced` counts
    /// the ones done.
    sync_asked: u64,
    synced: u64,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the thread.
    work: Condvar,
    /// Wakes callers of [`Writer::sync`].
    done: Condvar,
    /// Record bytes queued and not yet written.
    pending: AtomicUsize,
    /// Every record below this seq is in its segment file.
    written: AtomicU64,
    /// Every record below this seq is accepted under the sync policy.
    accepted: watch::Sender<u64>,
    progress: Mutex<Option<Progress>>,
    /// The last write or sync failure, while it lasts.
    failing: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handle the spool keeps; dropping it writes and syncs what is queued and ends the thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("written", &self.written())
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the thread for `dir`; records below `next_seq` are already on disk.
    pub(crate) fn start(dir: &Path, next_seq: u64, sync: SpoolSync) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            pending: AtomicUsize::new(0),
            written: AtomicU64::new(next_seq),
            accepted: watch::channel(next_seq).0,
            progress: Mutex::new(None),
            failing: Mutex::new(None),
        });
        let thread = {
            let shared = shared.clone();
            let dir = dir.to_owned();
            std::thread::Builder::new()
                .name("edgewire-spool".into())
                .spawn(move || Thread::new(shared, dir, sync).run())?
        };
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a record for the segment at `path`: `encode` appends its bytes.
    pub(crate) fn append(&self, path: &Path, end_seq: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut q = lock(&self.shared.queue);
        let fresh = !matches!(q.ops.last(), Some(Op::Append { path: p, .. }) if p == path);
        if fresh {
            q.ops.push(Op::Append {
                path: path.to_owned(),
                data: Vec::new(),
                end_seq,
            });
        }
        if let Some(Op::Append {
            data, end_seq: end, ..
        }) = q.ops.last_mut()
        {
            let before = data.len();
            encode(data);
            *end = end_seq;
            self.shared
                .pending
                .fetch_add(data.len() - before, Ordering::Relaxed);
        }
        drop(q);
        self.shared.work.notify_one();
    }

    /// Queues the removal of a segment file (after everything queued before it).
    pub(crate) fn remove(&self, path: PathBuf) {
        lock(&self.shared.queue).ops.push(Op::Remove(path));
        self.shared.work.notify_one();
    }

    /// Queues a state snapshot to save (replacing one not yet saved).
    pub(crate) fn save_state(&self, snap: StateSnapshot) {
        lock(&self.shared.queue).state = Some(snap);
        self.shared.work.notify_one();
    }

    /// Blocks until everything queued so far is written, synced and the state saved.
    pub(crate) fn sync(&self) {
        let mut q = lock(&self.shared.queue);
        q.sync_asked += 1;
        let mine = q.sync_asked;
        self.shared.work.notify_one();
        while q.synced < mine && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            q = self
                .shared
                .done
                .wait_timeout(q, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Record bytes queued and not written yet.
    pub(crate) fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Every record below this seq can be read back from its file.
    pub(crate) fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// Seqs below the value are accepted (written, or synced under `always`).
    pub(crate) fn accepted(&self) -> watch::Receiver<u64> {
        self.shared.accepted.subscribe()
    }

    /// What to call after each batch.
    pub(crate) fn on_progress(&self, f: Progress) {
        *lock(&self.shared.progress) = Some(f);
    }

    /// The current write failure, if writes are failing.
    pub(crate) fn failing(&self) -> Option<String> {
        lock(&self.shared.failing).clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread's own state.
struct Thread {
    shared: Arc<Shared>,
    dir: PathBuf,
    sync: SpoolSync,
    file: Option<(PathBuf, File, u64)>,
    /// Data written since the last `fdatasync`.
    dirty: bool,
    /// Folder entries changed since the last folder sync.
    dir_dirty: bool,
    last_sync: Instant,
}

impl Thread {
    fn new(shared: Arc<Shared>, dir: PathBuf, sync: SpoolSync) -> Self {
        Thread {
            shared,
            dir,
            sync,
            file: None,
            dirty: false,
            dir_dirty: false,
            last_sync: Instant::now(),
        }
    }

    fn run(mut self) {
        loop {
            let (ops, snap, sync_asked, stop) = self.next_batch();
            if let Err(stopping) = self.apply_all(ops) {
                if stopping {
                    return;
                }
                // Try again in a second (or sooner when stopped); the snapshot waits too.
                let mut q = lock(&self.shared.queue);
                if snap.is_some() && q.state.is_none() {
                    q.state = snap;
                }
                let _ = self
                    .shared
                    .work
                    .wait_timeout(q, Duration::from_secs(1))
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let due = match self.sync {
                SpoolSync::Always => true,
                SpoolSync::Interval(every) => {
                    sync_asked.is_some() || stop || self.last_sync.elapsed() >= every
                }
            };
            if due {
                self.sync_files();
            }
            if let Some(snap) = snap
                && let Err(e) = state::write(&self.dir, snap.low, snap.next, &snap.acked)
            {
                tracing::warn!("{e}");
            }
            self.publish(due);
            if let Some(n) = sync_asked {
                lock(&self.shared.queue).synced = n;
                self.shared.done.notify_all();
            }
            if stop && lock(&self.shared.queue).ops.is_empty() {
                return;
            }
        }
    }

    /// Applies `ops` in order. On a failure the failed op and the rest go back to the front of
    /// the queue; `Err(true)` if the writer is stopping (the rest was never accepted).
    fn apply_all(&mut self, ops: Vec<Op>) -> Result<(), bool> {
        let mut ops = ops.into_iter();
        while let Some(op) = ops.next() {
            if let Err(op) = self.apply(op) {
                self.publish(false);
                let mut q = lock(&self.shared.queue);
                let mut rest: Vec<Op> = std::iter::once(op).chain(ops).collect();
                rest.append(&mut q.ops);
                q.ops = rest;
                return Err(q.stop);
            }
        }
        Ok(())
    }

    /// Waits for work (or for an interval sync that is due) and takes it.
    fn next_batch(&mut self) -> (Vec<Op>, Option<StateSnapshot>, Option<u64>, bool) {
        let mut q = lock(&self.shared.queue);
        loop {
            let asked = q.sync_asked > q.synced;
            if !q.ops.is_empty() || q.state.is_some() || asked || q.stop {
                let ops = std::mem::take(&mut q.ops);
                let sync_asked = asked.then_some(q.sync_asked);
                return (ops, q.state.take(), sync_asked, q.stop);
            }
            match self.sync {
                SpoolSync::Interval(every) if self.dirty || self.dir_dirty => {
                    let left = every.saturating_sub(self.last_sync.elapsed());
                    if left.is_zero() {
                        return (Vec::new(), None, None, false);
                    }
                    q = self
                        .shared
                        .work
                        .wait_timeout(q, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                _ => {
                    q = self
                        .shared
                        .work
                        .wait(q)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Carries out one op; gives it back if it failed (to be retried).
    fn apply(&mut self, op: Op) -> Result<(), Op> {
        match op {
            Op::Append {
                path,
                data,
                end_seq,
            } => match self.append(&path, &data) {
                Ok(()) => {
                    self.shared.pending.fetch_sub(data.len(), Ordering::Relaxed);
                    self.shared.written.store(end_seq, Ordering::Release);
                    self.set_failing(None);
                    Ok(())
                }
                Err(e) => {
                    self.set_failing(Some(format!(
                        "spool: cannot append to `{}`: {e}; retrying every second (accepted messages are kept, new ones wait)",
                        path.display()
                    )));
                    Err(Op::Append {
                        path,
                        data,
                        end_seq,
                    })
                }
            },
            Op::Remove(path) => {
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(
                        "spool: cannot remove the finished segment `{}`: {e}",
                        path.display()
                    );
                }
                self.dir_dirty = true;
                Ok(())
            }
        }
    }

    fn append(&mut self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        if self.file.as_ref().is_none_or(|(p, _, _)| p != path) {
            // The older segment is complete: make it durable before writing the next one, so
            // a segment is never behind a later one on disk.
            self.sync_files();
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?;
            let len = f.metadata()?.len();
            self.file = Some((path.to_owned(), f, len));
            self.dir_dirty = true;
        }
        let Some((_, f, len)) = self.file.as_mut() else {
            return Ok(());
        };
        match f.write_all(data) {
            Ok(()) => {
                *len += data.len() as u64;
                self.dirty = true;
                Ok(())
            }
            Err(e) => {
                // Cut off a partial write so the retry does not leave damage behind it.
                let _ = f.set_len(*len);
                Err(e)
            }
        }
    }

    fn sync_files(&mut self) {
        if self.dirty
            && let Some((path, f, _)) = &self.file
        {
            match f.sync_data() {
                Ok(()) => self.dirty = false,
                Err(e) => tracing::error!("spool: cannot sync `{}`: {e}", path.display()),
            }
        }
        if self.dir_dirty {
            match state::sync_dir(&self.dir) {
                Ok(()) => self.dir_dirty = false,
                Err(e) => tracing::error!("{e}"),
            }
        }
        self.last_sync = Instant::now();
    }

    fn publish(&self, synced: bool) {
        let written = self.shared.written.load(Ordering::Acquire);
        let accepted = match self.sync {
            SpoolSync::Always if !synced || self.dirty => None,
            _ => Some(written),
        };
        if let Some(a) = accepted {
            self.shared.accepted.send_if_modified(|v| {
                let changed = *v < a;
                *v = (*v).max(a);
                changed
            });
        }
        let progress = lock(&self.shared.progress).clone();
        if let Some(f) = progress {
            f();
        }
    }

    fn set_failing(&self, what: Option<String>) {
        let mut failing = lock(&self.shared.failing);
        if *failing != what {
            if let Some(w) = &what {
                tracing::error!("{w}");
            } else {
                tracing::info!("spool: writing works again");
            }
            *failing = what;
        }
    }
}
