//! The outbox: every message a caller publishes goes here first and leaves only when the broker
//! has acknowledged it (QoS 1) or it was written to the socket (QoS 0). Two kinds: in memory
//! (bounded, back-pressure) and on disk (durable, capped, drops the oldest when full).

mod memory;
pub mod record;
mod spool;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;

pub use memory::MemoryQueue;
pub use spool::{DiskSpool, SpoolConfig, SpoolSync};

use crate::message::Message;

/// Messages that had to be dropped to make room in a full spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// How many unacknowledged messages were lost.
    pub count: u64,
    /// Every message with a lower seq is gone or was acknowledged.
    pub below_seq: u64,
}

/// What became of an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Still waiting to be sent or confirmed.
    Pending,
    /// Confirmed by the broker (QoS 1) or written (QoS 0).
    Acked,
    /// Dropped from a full spool before it could be sent.
    Dropped,
    /// Its spool record was found damaged; it cannot be sent.
    Lost,
}

/// What an outbox knew about each message when it was released: enough to answer
/// [`Outbox::fate`] afterwards without holding the messages (or a spool's lock). A caller may
/// ask about a message only after the session closed, because its task was first polled then.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    next_seq: u64,
    /// Every seq below `low` is acknowledged, dropped or lost.
    low: u64,
    /// Acknowledged seqs at or above `low`.
    acked: BTreeSet<u64>,
    dropped: Vec<Range<u64>>,
    lost: Vec<Range<u64>>,
}

impl Settled {
    /// What became of `seq`.
    pub fn fate(&self, seq: u64) -> Fate {
        fate_of(
            seq,
            self.next_seq,
            self.low,
            &self.acked,
            &self.dropped,
            &self.lost,
        )
    }
}

/// The disk spool's bookkeeping read for one seq (a memory queue has no drops or losses).
fn fate_of(
    seq: u64,
    next_seq: u64,
    low: u64,
    acked: &BTreeSet<u64>,
    dropped: &[Range<u64>],
    lost: &[Range<u64>],
) -> Fate {
    let within = |ranges: &[Range<u64>]| ranges.iter().any(|r| r.contains(&seq));
    if seq >= next_seq {
        Fate::Pending
    } else if within(lost) {
        Fate::Lost
    } else if seq < low || acked.contains(&seq) {
        if within(dropped) {
            Fate::Dropped
        } else {
            Fate::Acked
        }
    } else {
        Fate::Pending
    }
}

/// Why the outbox could not take or give a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// A file operation failed.
    #[error("spool: cannot {op} `{path}`: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Another process uses this spool folder.
    #[error(
        "spool folder `{dir}` is in use by another process (its LOCK file is held); give each agent its own --spool folder"
    )]
    Locked {
        /// The folder.
        dir: PathBuf,
    },
    /// A message larger than the whole spool.
    #[error("message of {size} bytes cannot fit in a spool of {max} bytes; raise --spool-max-mb")]
    TooLarge {
        /// Encoded size.
        size: u64,
        /// Spool cap.
        max: u64,
    },
}

/// The queue of unacknowledged messages, in memory or on disk.
#[derive(Debug)]
pub enum Outbox {
    /// Bounded memory queue; publishing waits when it is full.
    Memory(MemoryQueue),
    /// Durable disk spool.
    Disk(Box<DiskSpool>),
}

impl Outbox {
    /// An in-memory outbox holding at most `capacity` unacknowledged messages.
    pub fn memory(capacity: usize) -> Self {
        Outbox::Memory(MemoryQueue::new(capacity))
    }

    /// Opens the disk spool described by `cfg`.
    pub fn disk(cfg: SpoolConfig) -> Result<Self, OutboxError> {
        DiskSpool::open(cfg).map(|s| Outbox::Disk(Box::new(s)))
    }

    /// Whether accepted messages survive a crash.
    pub fn is_durable(&self) -> bool {
        matches!(self, Outbox::Disk(_))
    }

    /// Whether `push` can take a message now. A full disk spool drops its oldest to make
    /// room; it has none only while its writer has fallen far behind (a slow or failing disk).
    pub fn has_room(&self) -> bool {
        match self {
            Outbox::Memory(q) => q.has_room(),
            Outbox::Disk(s) => s.has_room(),
        }
    }

    /// What became of `seq`.
    pub fn fate(&self, seq: u64) -> Fate {
        match self {
            Outbox::Memory(q) => q.fate(seq),
            Outbox::Disk(s) => s.fate(seq),
        }
    }

    /// The fates of its messages, to keep once the outbox itself is released.
    pub fn settle(&self) -> Settled {
        match self {
            Outbox::Memory(q) => q.settle(),
            Outbox::Disk(s) => s.settle(),
        }
    }

    /// Records of a disk spool found damaged and skipped.
    pub fn lost(&self) -> u64 {
        match self {
            Outbox::Memory(_) => 0,
            Outbox::Disk(s) => s.lost(),
        }
    }

    /// Messages accepted and not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        match self {
            Outbox::Memory(q) => q.unacked(),
            Outbox::Disk(s) => s.unacked(),
        }
    }

    /// The seq the next accepted message gets: everything below it was accepted before.
    pub fn next_seq(&self) -> u64 {
        match self {
            Outbox::Memory(q) => q.next_seq(),
            Outbox::Disk(s) => s.next_seq(),
        }
    }

    /// Takes a message; returns its seq and what a full spool dropped to make room. A memory
    /// outbox accepts it at once; a disk spool once its writer has stored it (see
    /// [`DiskSpool::accepted`]).
    pub fn push(&mut self, message: Message) -> Result<(u64, Option<Dropped>), OutboxError> {
        match self {
            Outbox::Memory(q) => Ok((q.push(message), None)),
            Outbox::Disk(s) => s.push(&message),
        }
    }

    /// The next message to send.
    pub fn next_unsent(&mut self) -> Option<(u64, Message)> {
        match self {
            Outbox::Memory(q) => q.next_unsent(),
            Outbox::Disk(s) => s.next_unsent(),
        }
    }

    /// The broker confirmed `seq`.
    pub fn ack(&mut self, seq: u64) {
        match self {
            Outbox::Memory(q) => q.ack(seq),
            Outbox::Disk(s) => s.ack(seq),
        }
    }

    /// The connection was lost: hand out every unacknowledged message again, oldest first.
    pub fn rewind(&mut self) {
        match self {
            Outbox::Memory(q) => q.rewind(),
            Outbox::Disk(s) => s.rewind(),
        }
    }

    /// Saves the acknowledgement state soon (disk only; the writer thread does the I/O).
    pub fn persist(&mut self) {
        if let Outbox::Disk(s) = self {
            s.persist();
        }
    }

    /// Blocks until everything accepted is on the device and the state is saved (disk only).
    pub fn sync(&mut self) {
        if let Outbox::Disk(s) = self {
            s.sync();
        }
    }
}

#[cfg(test)]
mod tests;
