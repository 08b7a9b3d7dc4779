//! The outbox: every message a caller publishes goes here first and leaves only when the broker
//! has acknowledged it (QoS 1) or it was written to the socket (QoS 0). Two kinds: in memory
//! (bounded, back-pressure) and on disk (durable, capped, drops the oldest when full).

mod memory;
pub mod record;
mod spool;

use std::path::PathBuf;

pub use memory::MemoryQueue;
pub use spool::{DiskSpool, SpoolConfig};

use crate::message::Message;

/// Messages that had to be dropped to make room in a full spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// How many unacknowledged messages were lost.
    pub count: u64,
    /// Every message with a lower seq is gone or was acknowledged.
    pub below_seq: u64,
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
    /// A record could not be read back.
    #[error("spool segment `{path}` is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// The queue of unacknowledged messages, in memory or on disk.
#[derive(Debug)]
pub enum Outbox {
    /// Bounded memory queue; publishing waits when it is full.
    Memory(MemoryQueue),
    /// Durable disk spool.
    Disk(DiskSpool),
}

impl Outbox {
    /// An in-memory outbox holding at most `capacity` unacknowledged messages.
    pub fn memory(capacity: usize) -> Self {
        Outbox::Memory(MemoryQueue::new(capacity))
    }

    /// Opens the disk spool described by `cfg`.
    pub fn disk(cfg: SpoolConfig) -> Result<Self, OutboxError> {
        DiskSpool::open(cfg).map(Outbox::Disk)
    }

    /// Whether accepted messages survive a crash.
    pub fn is_durable(&self) -> bool {
        matches!(self, Outbox::Disk(_))
    }

    /// Whether `push` can take a message now (a disk spool always can; it drops the oldest).
    pub fn has_room(&self) -> bool {
        match self {
            Outbox::Memory(q) => q.has_room(),
            Outbox::Disk(_) => true,
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

    /// Accepts a message; returns its seq and what a full spool dropped to make room.
    pub fn push(&mut self, message: Message) -> Result<(u64, Option<Dropped>), OutboxError> {
        match self {
            Outbox::Memory(q) => Ok((q.push(message), None)),
            Outbox::Disk(s) => s.push(&message),
        }
    }

    /// The next message to send.
    pub fn next_unsent(&mut self) -> Result<Option<(u64, Message)>, OutboxError> {
        match self {
            Outbox::Memory(q) => Ok(q.next_unsent()),
            Outbox::Disk(s) => s.next_unsent(),
        }
    }

    /// The broker confirmed `seq`.
    pub fn ack(&mut self, seq: u64) -> Result<(), OutboxError> {
        match self {
            Outbox::Memory(q) => {
                q.ack(seq);
                Ok(())
            }
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

    /// Makes the current state durable (disk only).
    pub fn persist(&mut self) -> Result<(), OutboxError> {
        match self {
            Outbox::Memory(_) => Ok(()),
            Outbox::Disk(s) => s.persist(),
        }
    }
}

#[cfg(test)]
mod tests;
