//! The disk spool: a durable FIFO of messages in segment files, capped by bytes and file count.
//!
//! Layout of the spool folder: `seg-<first seq>.log` files of records (see `record.rs`), a
//! `state` file with the acknowledgement watermark (`state.rs`), and a `LOCK` file held while a
//! process uses the folder.
//!
//! Durability (docs/transport.md, "The spool's durability contract"): a message is *accepted*
//! once the writer thread (`writer.rs`) has written its record to the segment file, under
//! [`SpoolSync::Interval`], or written and synced it to the device, under [`SpoolSync::Always`].
//! Accepted messages survive a `kill -9` of the agent under both policies and a power cut under
//! `Always`; under `Interval` a power cut can lose what was accepted in the last interval.
//! Acknowledgements are saved in `state` every interval, so a crash can at worst resend a few
//! already-acknowledged messages (QoS 1 is at-least-once), never lose one.
//!
//! Damage (a flipped bit, a truncated file) costs the damaged records only: they are skipped and
//! counted as lost, on opening (`recover.rs`) and when read back; the good records behind them
//! are delivered. When a cap is hit the oldest segment goes, with its unacknowledged messages
//! counted and reported (IoTConnect's `offlineStorage` semantics: file size = space / file
//! count, delete the oldest file when all are full).

mod recover;
mod state;
mod writer;

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use super::record::{self, HEADER_LEN};
use super::{Dropped, Fate, OutboxError};
use crate::message::Message;
use recover::segment_path;
use writer::Progress;
use writer::{StateSnapshot, Writer};

/// When an appended message counts as accepted, and how often data is synced to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolSync {
    /// Accepted once synced to the device (`fdatasync`), one sync per batch of messages:
    /// nothing accepted is lost even by a power cut. Slower: a publisher that waits for each
    /// message pays a sync for each.
    Always,
    /// Accepted once written to the file (the operating system holds it): nothing accepted is
    /// lost when the agent is killed; synced to the device at most this often, so a power cut
    /// can lose what was accepted in the last interval.
    Interval(Duration),
}

impl Default for SpoolSync {
    fn default() -> Self {
        SpoolSync::Interval(Duration::from_millis(200))
    }
}

impl SpoolSync {
    /// How often acknowledgement state is saved.
    pub fn state_interval(self) -> Duration {
        match self {
            SpoolSync::Always => Duration::from_millis(200),
            SpoolSync::Interval(d) => d.max(Duration::from_millis(10)),
        }
    }
}

/// Limits and place of a disk spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool folder (created 0700 if missing).
    pub dir: PathBuf,
    /// Most bytes of segment files kept.
    pub max_bytes: u64,
    /// Most segment files kept.
    pub max_files: u32,
    /// See [`SpoolSync`].
    pub sync: SpoolSync,
}

impl SpoolConfig {
    /// A spool in `dir` with the defaults: 64 MiB in 16 files, synced every 200 ms.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 64 * 1024 * 1024,
            max_files: 16,
            sync: SpoolSync::default(),
        }
    }

    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / u64::from(self.max_files.max(1))).max(4096)
    }
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// Seq after the last record (== first_seq when empty).
    end_seq: u64,
    bytes: u64,
    path: PathBuf,
}

/// Where the reader is: segment (by first seq), byte offset, and the seq found there.
#[derive(Debug, Clone, Copy)]
struct ReadCursor {
    segment_first: u64,
    offset: u64,
    seq: u64,
}

/// A recently appended record kept in memory so the sender does not read it back from disk.
#[derive(Debug)]
struct Cached {
    seq: u64,
    message: Message,
    segment_first: u64,
    end_offset: u64,
}

const CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Record bytes queued for the writer before publishers wait (a slow or failing disk).
const MAX_PENDING: usize = 16 * 1024 * 1024;

/// Seq ranges that left the spool without an acknowledgement.
#[derive(Debug, Default)]
struct Gone {
    dropped: Vec<Range<u64>>,
    lost: Vec<Range<u64>>,
    lost_count: u64,
}

fn add_range(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    if r.is_empty() {
        return;
    }
    match ranges.last_mut() {
        Some(last) if last.end >= r.start && r.end >= last.start => {
            last.start = last.start.min(r.start);
            last.end = last.end.max(r.end);
        }
        _ => ranges.push(r),
    }
}

/// The disk spool. Not thread-safe by itself; the session keeps it behind a mutex.
#[derive(Debug)]
pub struct DiskSpool {
    cfg: SpoolConfig,
    segments: VecDeque<Segment>,
    next_seq: u64,
    /// Every seq below `low` is acknowledged, dropped or lost.
    low: u64,
    /// Acknowledged (or lost) seqs at or above `low` (acks may come out of order).
    acked: BTreeSet<u64>,
    gone: Gone,
    cursor: ReadCursor,
    cache: VecDeque<Cached>,
    cache_bytes: usize,
    state_dirty: bool,
    /// The segment file the reader has open, by first seq.
    reader: Option<(u64, File)>,
    // Declared before the lock, so the writer finishes before the lock is released.
    writer: Writer,
    _lock: File,
}

pub(super) fn io_err(
    path: &Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> OutboxError + use<> {
    let path = path.to_owned();
    move |source| OutboxError::Io { path, op, source }
}

impl DiskSpool {
    /// Opens (or creates) the spool, recovering what a previous process left.
    pub fn open(cfg: SpoolConfig) -> Result<Self, OutboxError> {
        let dir = cfg.dir.clone();
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(&dir, "create the spool folder"))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "open"))?;
        if lock.try_lock().is_err() {
            return Err(OutboxError::Locked { dir });
        }
        let saved = state::read(&dir.join("state"))?;
        let recovered = recover::scan(&dir)?;
        let mut segments = recovered.segments;
        let mut next_seq = segments
            .back()
            .map_or(0, |s| s.end_seq)
            .max(saved.next)
            .max(saved.low);
        if segments.is_empty() {
            next_seq = next_seq.max(1);
        }
        let low = saved
            .low
            .max(segments.front().map_or(next_seq, |s| s.first_seq))
            .min(next_seq);
        // Segments wholly acknowledged before the last run ended.
        while segments.len() > 1 && segments.front().is_some_and(|s| s.end_seq <= low) {
            if let Some(s) = segments.pop_front() {
                fs::remove_file(&s.path)
                    .map_err(io_err(&s.path, "remove an acknowledged segment"))?;
            }
        }
        // Appends go to a fresh segment: a recovered one may end in a repaired region.
        segments.push_back(Segment {
            first_seq: next_seq,
            end_seq: next_seq,
            bytes: 0,
            path: segment_path(&dir, next_seq),
        });
        let writer = Writer::start(&dir, next_seq, cfg.sync)
            .map_err(io_err(&dir, "start the spool writer for"))?;
        let first = segments.front().map_or(next_seq, |s| s.first_seq);
        let mut spool = DiskSpool {
            cfg,
            segments,
            next_seq,
            low,
            acked: BTreeSet::new(),
            gone: Gone::default(),
            cursor: ReadCursor {
                segment_first: first,
                offset: 0,
                seq: first,
            },
            cache: VecDeque::new(),
            cache_bytes: 0,
            state_dirty: true,
            reader: None,
            writer,
            _lock: lock,
        };
        spool.acked = saved
            .acked
            .into_iter()
            .filter(|&s| s >= spool.low && s < spool.next_seq)
            .collect();
        spool.advance_low();
        for r in recovered.lost {
            spool.mark_lost(r);
        }
        spool.rewind();
        Ok(spool)
    }

    /// The seq the next `push` gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Messages accepted and neither acknowledged, dropped nor lost.
    pub fn unacked(&self) -> u64 {
        self.next_seq - self.low - self.acked.len() as u64
    }

    /// Bytes in segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Number of segment files.
    pub fn files(&self) -> usize {
        self.segments.iter().filter(|s| s.bytes > 0).count().max(1)
    }

    /// The sync policy.
    pub fn sync_policy(&self) -> SpoolSync {
        self.cfg.sync
    }

    /// Records found damaged (on opening or when read back) and skipped.
    pub fn lost(&self) -> u64 {
        self.gone.lost_count
    }

    /// Whether the writer can take more now (it has not fallen behind by too much).
    pub fn has_room(&self) -> bool {
        self.writer.pending() < MAX_PENDING
    }

    /// Seqs below the value are accepted (see the module comment).
    pub fn accepted(&self) -> watch::Receiver<u64> {
        self.writer.accepted()
    }

    /// The current write failure (a full disk), while writes are failing.
    pub fn failing(&self) -> Option<String> {
        self.writer.failing()
    }

    pub(crate) fn on_progress(&self, f: Progress) {
        self.writer.on_progress(f);
    }

    /// What became of `seq`.
    pub fn fate(&self, seq: u64) -> Fate {
        super::fate_of(
            seq,
            self.next_seq,
            self.low,
            &self.acked,
            &self.gone.dropped,
            &self.gone.lost,
        )
    }

    /// The fates of its messages (see [`super::Settled`]).
    pub fn settle(&self) -> super::Settled {
        super::Settled {
            next_seq: self.next_seq,
            low: self.low,
            acked: self.acked.clone(),
            dropped: self.gone.dropped.clone(),
            lost: self.gone.lost.clone(),
        }
    }

    /// Appends a message; returns its seq and what had to be dropped to make room. The message
    /// is accepted once [`DiskSpool::accepted`] passes its seq.
    pub fn push(&mut self, message: &Message) -> Result<(u64, Option<Dropped>), OutboxError> {
        let len = record::encoded_len(message) as u64;
        if len > self.cfg.max_bytes {
            return Err(OutboxError::TooLarge {
                size: len,
                max: self.cfg.max_bytes,
            });
        }
        let seg_bytes = self.cfg.segment_bytes();
        if self.active().bytes > 0 && self.active().bytes + len > seg_bytes {
            let path = segment_path(&self.cfg.dir, self.next_seq);
            self.segments.push_back(Segment {
                first_seq: self.next_seq,
                end_seq: self.next_seq,
                bytes: 0,
                path,
            });
        }
        let seq = self.next_seq;
        self.writer.append(&self.active().path, seq + 1, |buf| {
            record::encode(seq, message, buf);
        });
        self.next_seq += 1;
        let active = self.active_mut();
        active.bytes += len;
        active.end_seq = seq + 1;
        let (segment_first, end_offset) = (active.first_seq, active.bytes);
        if self.cache_bytes + len as usize <= CACHE_BYTES {
            self.cache_bytes += len as usize;
            self.cache.push_back(Cached {
                seq,
                message: message.clone(),
                segment_first,
                end_offset,
            });
        }
        Ok((seq, self.enforce_caps()))
    }

    /// The next message not yet handed out since the last rewind, skipping acknowledged ones.
    /// Damaged records are skipped and counted ([`DiskSpool::lost`]); a record the writer has
    /// not written yet waits.
    pub fn next_unsent(&mut self) -> Option<(u64, Message)> {
        loop {
            if self.cursor.seq >= self.next_seq {
                return None;
            }
            while self.cache.front().is_some_and(|c| c.seq < self.cursor.seq) {
                self.pop_cache();
            }
            let (seq, message) = if self.cache.front().is_some_and(|c| c.seq == self.cursor.seq) {
                let c = self.pop_cache()?;
                self.cursor = ReadCursor {
                    segment_first: c.segment_first,
                    offset: c.end_offset,
                    seq: c.seq + 1,
                };
                (c.seq, c.message)
            } else if self.cursor.seq >= self.writer.written() {
                return None;
            } else {
                self.read_at_cursor()?
            };
            if seq >= self.low && !self.acked.contains(&seq) {
                return Some((seq, message));
            }
        }
    }

    /// Marks a message acknowledged; whole acknowledged segments are deleted.
    pub fn ack(&mut self, seq: u64) {
        if seq < self.low || seq >= self.next_seq {
            return;
        }
        self.acked.insert(seq);
        self.advance_low();
    }

    /// Sends the reader back to the oldest unacknowledged message (after a lost connection).
    pub fn rewind(&mut self) {
        if let Some(first) = self.segments.front() {
            self.cursor = ReadCursor {
                segment_first: first.first_seq,
                offset: 0,
                seq: first.first_seq,
            };
        }
    }

    /// Hands the acknowledgement state to the writer to save (cheap; no I/O here).
    pub fn persist(&mut self) {
        if self.state_dirty {
            // `next` only as far as records are written: a seq recorded here but never
            // written would read as a gap (lost records) on the next start.
            self.writer.save_state(StateSnapshot {
                low: self.low,
                next: self.writer.written().min(self.next_seq),
                acked: self.acked.clone(),
            });
            self.state_dirty = false;
        }
    }

    /// Blocks until everything accepted so far is written, synced and the state saved.
    pub fn sync(&mut self) {
        self.state_dirty = true;
        self.persist();
        self.writer.sync();
    }

    fn active(&self) -> &Segment {
        // The constructor always leaves one segment and nothing removes the last one.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn pop_cache(&mut self) -> Option<Cached> {
        let c = self.cache.pop_front()?;
        self.cache_bytes -= record::encoded_len(&c.message);
        Some(c)
    }

    /// Moves `low` past acknowledged seqs and deletes segments that are wholly behind it.
    fn advance_low(&mut self) {
        while self.acked.remove(&self.low) {
            self.low += 1;
        }
        self.state_dirty = true;
        while self.segments.len() > 1
            && self.segments.front().is_some_and(|s| s.end_seq <= self.low)
        {
            if let Some(s) = self.segments.pop_front() {
                self.writer.remove(s.path);
                self.fix_cursor_after_removal();
            }
        }
    }

    /// Records that cannot be delivered (damaged): counted, then treated as done.
    fn mark_lost(&mut self, r: Range<u64>) {
        let mut count = 0;
        for seq in r.clone() {
            if seq >= self.low && seq < self.next_seq && self.acked.insert(seq) {
                count += 1;
            }
        }
        if count > 0 {
            self.gone.lost_count += count;
            add_range(&mut self.gone.lost, r);
            self.advance_low();
        }
    }

    fn enforce_caps(&mut self) -> Option<Dropped> {
        let mut dropped: Option<Dropped> = None;
        while self.segments.len() > 1
            && (self.segments.len() > self.cfg.max_files as usize
                || self.bytes() > self.cfg.max_bytes)
        {
            let seg = self.segments.pop_front()?;
            let from = self.low.max(seg.first_seq);
            let acked_inside = self.acked.range(from..seg.end_seq).count() as u64;
            let lost = seg.end_seq.saturating_sub(from) - acked_inside;
            add_range(&mut self.gone.dropped, from..seg.end_seq);
            self.low = self.low.max(seg.end_seq);
            self.acked = self.acked.split_off(&self.low);
            self.state_dirty = true;
            self.writer.remove(seg.path);
            self.fix_cursor_after_removal();
            let d = dropped.get_or_insert(Dropped {
                count: 0,
                below_seq: 0,
            });
            d.count += lost;
            d.below_seq = self.low;
        }
        dropped
    }

    fn fix_cursor_after_removal(&mut self) {
        let Some(first) = self.segments.front() else {
            return;
        };
        if self
            .reader
            .as_ref()
            .is_some_and(|(f, _)| *f < first.first_seq)
        {
            self.reader = None;
        }
        if self.cursor.segment_first < first.first_seq {
            self.cursor = ReadCursor {
                segment_first: first.first_seq,
                offset: 0,
                seq: first.first_seq,
            };
        }
    }

    /// Reads the record at the cursor from its file. A damaged or unreadable record is skipped
    /// (the next good one is searched for in the rest of the segment) and counted as lost.
    fn read_at_cursor(&mut self) -> Option<(u64, Message)> {
        loop {
            let idx = self
                .segments
                .iter()
                .position(|s| s.first_seq == self.cursor.segment_first);
            let Some(idx) = idx else {
                self.rewind();
                return None;
            };
            let seg = &self.segments[idx];
            if self.cursor.offset >= seg.bytes {
                let next = self.segments.get(idx + 1)?;
                self.cursor = ReadCursor {
                    segment_first: next.first_seq,
                    offset: 0,
                    seq: next.first_seq,
                };
                continue;
            }
            match self.read_record(idx) {
                Ok((rec, used)) => {
                    self.cursor = ReadCursor {
                        segment_first: self.cursor.segment_first,
                        offset: self.cursor.offset + used as u64,
                        seq: rec.seq + 1,
                    };
                    return Some((rec.seq, rec.message));
                }
                Err(problem) => self.skip_damage(idx, &problem),
            }
        }
    }

    fn read_record(&mut self, idx: usize) -> Result<(record::Record, usize), String> {
        let seg = &self.segments[idx];
        if self
            .reader
            .as_ref()
            .is_none_or(|(first, _)| *first != seg.first_seq)
        {
            let file = File::open(&seg.path).map_err(|e| format!("cannot open it: {e}"))?;
            self.reader = Some((seg.first_seq, file));
        }
        let Some((_, file)) = self.reader.as_ref() else {
            return Err("not open".into());
        };
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, self.cursor.offset)
            .map_err(|e| format!("cannot read it: {e}"))?;
        let body_len = record::body_len(&header)
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        let mut buf = vec![0u8; HEADER_LEN + body_len];
        file.read_exact_at(&mut buf, self.cursor.offset)
            .map_err(|e| format!("cannot read it: {e}"))?;
        match record::decode(&buf) {
            Ok(Some((rec, used))) if rec.seq >= self.cursor.seq => Ok((rec, used)),
            Ok(Some((rec, _))) => Err(format!(
                "found record {} where {} or later belongs",
                rec.seq, self.cursor.seq
            )),
            Ok(None) => Err("record cut short".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// After a bad record at the cursor: on to the next good one in the segment (or the next
    /// segment), counting what was skipped.
    fn skip_damage(&mut self, idx: usize, problem: &str) {
        let seg = &self.segments[idx];
        let (first, end_seq, bytes, path) =
            (seg.first_seq, seg.end_seq, seg.bytes, seg.path.clone());
        let from = self.cursor.offset;
        let rest = self.reader.as_ref().and_then(|(_, f)| {
            let mut buf = vec![0u8; usize::try_from(bytes - from).ok()?];
            f.read_exact_at(&mut buf, from).ok()?;
            Some(buf)
        });
        let found = rest.as_deref().and_then(|data| {
            let at = recover::resync(data, 1, self.cursor.seq)?;
            let (rec, _) = record::decode(&data[at..]).ok()??;
            Some((at as u64, rec.seq))
        });
        let (skip_to, offset) = match found {
            Some((at, seq)) => (seq, from + at),
            None => (end_seq, bytes),
        };
        tracing::warn!(
            "spool segment `{}` is damaged at byte {from} ({problem}); skipping records {}..{skip_to}",
            path.display(),
            self.cursor.seq
        );
        let lost_from = self.cursor.seq;
        self.cursor = ReadCursor {
            segment_first: first,
            offset,
            seq: skip_to,
        };
        self.mark_lost(lost_from..skip_to);
    }
}

impl Drop for DiskSpool {
    fn drop(&mut self) {
        // The writer's own drop then writes and syncs what is queued.
        self.persist();
    }
}
