//! The disk spool: a durable FIFO of messages in segment files, capped by bytes and file count.
//!
//! Layout of the spool folder: `seg-<first seq>.log` files of records (see `record.rs`), a
//! `state` file with the acknowledgement watermark, and a `LOCK` file held while a process uses
//! the folder. A message is accepted only after its record is written to the segment (so a
//! `kill -9` cannot lose it); acknowledgements are saved in `state` every few hundred
//! milliseconds, so a crash can at worst resend a few already-acknowledged messages (QoS 1 is
//! at-least-once), never lose one. When a cap is hit the oldest segment goes, with its
//! unacknowledged messages counted and reported (IoTConnect's `offlineStorage` semantics: file
//! size = space / file count, delete the oldest file when all are full).

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{self, HEADER_LEN};
use super::{Dropped, OutboxError};
use crate::message::Message;

/// Limits and place of a disk spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool folder (created 0700 if missing).
    pub dir: PathBuf,
    /// Most bytes of segment files kept.
    pub max_bytes: u64,
    /// Most segment files kept.
    pub max_files: u32,
}

impl SpoolConfig {
    /// A spool in `dir` with the defaults: 64 MiB in 16 files.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 64 * 1024 * 1024,
            max_files: 16,
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

/// Where the reader is: segment index (into `segments`), byte offset, and the seq found there.
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

/// The disk spool. Not thread-safe by itself; the session keeps it behind a mutex.
#[derive(Debug)]
pub struct DiskSpool {
    cfg: SpoolConfig,
    _lock: File,
    segments: VecDeque<Segment>,
    writer: File,
    next_seq: u64,
    /// Every seq below `low` is acknowledged or dropped.
    low: u64,
    /// Acknowledged seqs at or above `low` (acks may come out of order).
    acked: BTreeSet<u64>,
    cursor: ReadCursor,
    cache: VecDeque<Cached>,
    cache_bytes: usize,
    state_dirty: bool,
    data_dirty: bool,
    scratch: Vec<u8>,
    /// The segment file the reader has open, by first seq.
    reader: Option<(u64, File)>,
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> OutboxError + use<> {
    let path = path.to_owned();
    move |source| OutboxError::Io { path, op, source }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.log"))
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
        let (mut low, state_next, acked) = read_state(&dir.join("state"))?;
        let mut segments = scan_segments(&dir)?;
        let mut next_seq = segments
            .back()
            .map_or(0, |s| s.end_seq)
            .max(state_next)
            .max(low);
        if segments.is_empty() {
            next_seq = next_seq.max(1);
        }
        low = low
            .max(segments.front().map_or(next_seq, |s| s.first_seq))
            .min(next_seq);
        // Segments wholly acknowledged before the last run ended.
        while segments.len() > 1 && segments.front().is_some_and(|s| s.end_seq <= low) {
            if let Some(s) = segments.pop_front() {
                fs::remove_file(&s.path)
                    .map_err(io_err(&s.path, "remove an acknowledged segment"))?;
            }
        }
        let writer_path = if let Some(s) = segments.back() {
            s.path.clone()
        } else {
            let path = segment_path(&dir, next_seq);
            segments.push_back(Segment {
                first_seq: next_seq,
                end_seq: next_seq,
                bytes: 0,
                path: path.clone(),
            });
            path
        };
        let writer = open_segment(&writer_path)?;
        let first = segments.front().map_or(next_seq, |s| s.first_seq);
        let mut spool = DiskSpool {
            cfg,
            _lock: lock,
            segments,
            writer,
            next_seq,
            low,
            acked: BTreeSet::new(),
            cursor: ReadCursor {
                segment_first: first,
                offset: 0,
                seq: first,
            },
            cache: VecDeque::new(),
            cache_bytes: 0,
            state_dirty: true,
            data_dirty: false,
            scratch: Vec::new(),
            reader: None,
        };
        spool.acked = acked
            .into_iter()
            .filter(|&s| s >= spool.low && s < spool.next_seq)
            .collect();
        while spool.acked.remove(&spool.low) {
            spool.low += 1;
        }
        spool.rewind();
        Ok(spool)
    }

    /// The seq the next `push` gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Messages accepted and neither acknowledged nor dropped.
    pub fn unacked(&self) -> u64 {
        self.next_seq - self.low - self.acked.len() as u64
    }

    /// Bytes in segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Number of segment files.
    pub fn files(&self) -> usize {
        self.segments.len()
    }

    /// Appends a message; returns its seq and what had to be dropped to make room.
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
            self.rotate()?;
        }
        let seq = self.next_seq;
        self.scratch.clear();
        record::encode(seq, message, &mut self.scratch);
        let path = self.active().path.clone();
        self.writer
            .write_all(&self.scratch)
            .map_err(io_err(&path, "append to"))?;
        self.data_dirty = true;
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
        Ok((seq, self.enforce_caps()?))
    }

    /// The next message not yet handed out since the last rewind, skipping acknowledged ones.
    pub fn next_unsent(&mut self) -> Result<Option<(u64, Message)>, OutboxError> {
        loop {
            if self.cursor.seq >= self.next_seq {
                return Ok(None);
            }
            while self.cache.front().is_some_and(|c| c.seq < self.cursor.seq) {
                self.pop_cache();
            }
            let (seq, message) = if self.cache.front().is_some_and(|c| c.seq == self.cursor.seq) {
                let Some(c) = self.pop_cache() else {
                    return Ok(None);
                };
                self.cursor = ReadCursor {
                    segment_first: c.segment_first,
                    offset: c.end_offset,
                    seq: c.seq + 1,
                };
                (c.seq, c.message)
            } else {
                match self.read_at_cursor()? {
                    Some(r) => r,
                    None => return Ok(None),
                }
            };
            if seq >= self.low && !self.acked.contains(&seq) {
                return Ok(Some((seq, message)));
            }
        }
    }

    /// Marks a message acknowledged; whole acknowledged segments are deleted.
    pub fn ack(&mut self, seq: u64) -> Result<(), OutboxError> {
        if seq < self.low || seq >= self.next_seq {
            return Ok(());
        }
        self.acked.insert(seq);
        while self.acked.remove(&self.low) {
            self.low += 1;
        }
        self.state_dirty = true;
        while self.segments.len() > 1
            && self.segments.front().is_some_and(|s| s.end_seq <= self.low)
        {
            if let Some(s) = self.segments.pop_front() {
                fs::remove_file(&s.path)
                    .map_err(io_err(&s.path, "remove an acknowledged segment"))?;
                self.fix_cursor_after_removal();
            }
        }
        Ok(())
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

    /// Saves the acknowledgement state and flushes segment data to the device.
    pub fn persist(&mut self) -> Result<(), OutboxError> {
        if self.data_dirty {
            let path = self.active().path.clone();
            self.writer.sync_data().map_err(io_err(&path, "sync"))?;
            self.data_dirty = false;
        }
        if self.state_dirty {
            write_state(&self.cfg.dir, self.low, self.next_seq, &self.acked)?;
            self.state_dirty = false;
        }
        Ok(())
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

    fn rotate(&mut self) -> Result<(), OutboxError> {
        let old = self.active().path.clone();
        self.writer.sync_data().map_err(io_err(&old, "sync"))?;
        let path = segment_path(&self.cfg.dir, self.next_seq);
        self.writer = open_segment(&path)?;
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            end_seq: self.next_seq,
            bytes: 0,
            path,
        });
        Ok(())
    }

    fn enforce_caps(&mut self) -> Result<Option<Dropped>, OutboxError> {
        let mut dropped: Option<Dropped> = None;
        while self.segments.len() > 1
            && (self.segments.len() > self.cfg.max_files as usize
                || self.bytes() > self.cfg.max_bytes)
        {
            let Some(seg) = self.segments.pop_front() else {
                break;
            };
            let from = self.low.max(seg.first_seq);
            let acked_inside = self.acked.range(from..seg.end_seq).count() as u64;
            let lost = seg.end_seq.saturating_sub(from) - acked_inside;
            self.low = self.low.max(seg.end_seq);
            self.acked = self.acked.split_off(&self.low);
            self.state_dirty = true;
            fs::remove_file(&seg.path).map_err(io_err(&seg.path, "remove the oldest segment"))?;
            self.fix_cursor_after_removal();
            let d = dropped.get_or_insert(Dropped {
                count: 0,
                below_seq: 0,
            });
            d.count += lost;
            d.below_seq = self.low;
        }
        Ok(dropped)
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

    fn read_at_cursor(&mut self) -> Result<Option<(u64, Message)>, OutboxError> {
        loop {
            let idx = self
                .segments
                .iter()
                .position(|s| s.first_seq == self.cursor.segment_first);
            let Some(idx) = idx else {
                self.rewind();
                return Ok(None);
            };
            let seg = &self.segments[idx];
            if self.cursor.offset >= seg.bytes {
                let Some(next) = self.segments.get(idx + 1) else {
                    return Ok(None);
                };
                self.cursor = ReadCursor {
                    segment_first: next.first_seq,
                    offset: 0,
                    seq: next.first_seq,
                };
                continue;
            }
            if self
                .reader
                .as_ref()
                .is_none_or(|(first, _)| *first != seg.first_seq)
            {
                let file = File::open(&seg.path).map_err(io_err(&seg.path, "open"))?;
                self.reader = Some((seg.first_seq, file));
            }
            let Some((_, file)) = self.reader.as_ref() else {
                return Ok(None);
            };
            let mut header = [0u8; HEADER_LEN];
            file.read_exact_at(&mut header, self.cursor.offset)
                .map_err(io_err(&seg.path, "read"))?;
            let corrupt = |reason: String| OutboxError::Corrupt {
                path: seg.path.clone(),
                offset: self.cursor.offset,
                reason,
            };
            let body_len = record::body_len(&header)
                .map_err(|e| corrupt(e.to_string()))?
                .unwrap_or(0);
            let mut buf = vec![0u8; HEADER_LEN + body_len];
            file.read_exact_at(&mut buf, self.cursor.offset)
                .map_err(io_err(&seg.path, "read"))?;
            let (rec, used) = record::decode(&buf)
                .map_err(|e| corrupt(e.to_string()))?
                .ok_or_else(|| corrupt("record cut short".into()))?;
            self.cursor = ReadCursor {
                segment_first: seg.first_seq,
                offset: self.cursor.offset + used as u64,
                seq: rec.seq + 1,
            };
            return Ok(Some((rec.seq, rec.message)));
        }
    }
}

impl Drop for DiskSpool {
    fn drop(&mut self) {
        if let Err(e) = self.persist() {
            tracing::warn!("could not save the spool state on close: {e}");
        }
    }
}

fn open_segment(path: &Path) -> Result<File, OutboxError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path, "open"))
}

fn scan_segments(dir: &Path) -> Result<VecDeque<Segment>, OutboxError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let entry = entry.map_err(io_err(dir, "list"))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        if let Ok(first_seq) = first.parse::<u64>() {
            found.push((first_seq, entry.path()));
        }
    }
    found.sort_unstable();
    let mut segments = VecDeque::with_capacity(found.len());
    for (first_seq, path) in found {
        let data = fs::read(&path).map_err(io_err(&path, "read"))?;
        let mut offset = 0usize;
        let mut expect = first_seq;
        let mut problem = None;
        while offset < data.len() {
            match record::decode(&data[offset..]) {
                Ok(Some((rec, used))) if rec.seq == expect => {
                    offset += used;
                    expect += 1;
                }
                Ok(Some((rec, _))) => {
                    problem = Some(format!("expected record {expect}, found {}", rec.seq));
                    break;
                }
                Ok(None) => {
                    problem = Some(
                        "the last record is cut short (the writer was interrupted)".to_owned(),
                    );
                    break;
                }
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(problem) = problem {
            tracing::warn!(
                "spool segment `{}`: {problem}; keeping the {} records before byte {offset} and discarding the rest",
                path.display(),
                expect - first_seq
            );
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path, "open"))?;
            f.set_len(offset as u64)
                .map_err(io_err(&path, "truncate"))?;
        }
        if let Some(prev) = segments
            .back_mut()
            .filter(|p: &&mut Segment| p.end_seq != first_seq)
        {
            tracing::warn!(
                "spool segment `{}` does not follow the one before it; records {}..{first_seq} are missing",
                path.display(),
                prev.end_seq
            );
        }
        segments.push_back(Segment {
            first_seq,
            end_seq: expect,
            bytes: offset as u64,
            path,
        });
    }
    Ok(segments)
}

const STATE_MAGIC: &[u8; 8] = b"EWSPOOL1";

type SavedState = (u64, u64, Vec<u64>);

fn read_state(path: &Path) -> Result<SavedState, OutboxError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0, Vec::new())),
        Err(e) => return Err(io_err(path, "read")(e)),
    };
    let parsed = (|| {
        let body = data.strip_prefix(STATE_MAGIC)?;
        let (body, crc) = body.split_at_checked(body.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let low = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let next = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
        let acked = body
            .get(16..)?
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .collect();
        Some((low, next, acked))
    })();
    // A damaged state only costs duplicates: everything still on disk is sent again.
    parsed.map_or_else(
        || {
            tracing::warn!(
                "spool state `{}` is damaged; every spooled message will be sent again",
                path.display()
            );
            Ok((0, 0, Vec::new()))
        },
        Ok,
    )
}

fn write_state(dir: &Path, low: u64, next: u64, acked: &BTreeSet<u64>) -> Result<(), OutboxError> {
    let mut body = Vec::with_capacity(24 + acked.len() * 8);
    body.extend_from_slice(&low.to_le_bytes());
    body.extend_from_slice(&next.to_le_bytes());
    for seq in acked {
        body.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc32fast::hash(&body);
    let tmp = dir.join("state.tmp");
    let path = dir.join("state");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp, "create"))?;
    f.write_all(STATE_MAGIC)
        .and_then(|()| f.write_all(&body))
        .and_then(|()| f.write_all(&crc.to_le_bytes()))
        .map_err(io_err(&tmp, "write"))?;
    fs::rename(&tmp, &path).map_err(io_err(&path, "replace"))?;
    Ok(())
}
