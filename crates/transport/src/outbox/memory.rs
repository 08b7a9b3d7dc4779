//! The in-memory outbox used when no spool folder is given: the same FIFO contract as the disk
//! spool, bounded by a message count, with back-pressure instead of dropping.

use std::collections::VecDeque;

use crate::message::Message;

#[derive(Debug)]
struct Entry {
    message: Message,
    acked: bool,
}

/// A bounded FIFO of unacknowledged messages.
#[derive(Debug)]
pub struct MemoryQueue {
    entries: VecDeque<Entry>,
    /// Seq of `entries[0]`.
    front_seq: u64,
    /// Seq the reader hands out next.
    cursor: u64,
    capacity: usize,
    unacked: u64,
}

impl MemoryQueue {
    /// A queue that holds at most `capacity` unacknowledged messages.
    pub fn new(capacity: usize) -> Self {
        MemoryQueue {
            entries: VecDeque::new(),
            front_seq: 1,
            cursor: 1,
            capacity: capacity.max(1),
            unacked: 0,
        }
    }

    /// Whether another message fits.
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    /// Messages not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.unacked
    }

    /// The seq the next `push` gets.
    pub fn next_seq(&self) -> u64 {
        self.front_seq + self.entries.len() as u64
    }

    /// Appends; the caller checks `has_room` first (the session waits for room).
    pub fn push(&mut self, message: Message) -> u64 {
        let seq = self.front_seq + self.entries.len() as u64;
        self.entries.push_back(Entry {
            message,
            acked: false,
        });
        self.unacked += 1;
        seq
    }

    /// The next message not yet handed out since the last rewind.
    pub fn next_unsent(&mut self) -> Option<(u64, Message)> {
        loop {
            let idx = usize::try_from(self.cursor.checked_sub(self.front_seq)?).ok()?;
            let entry = self.entries.get(idx)?;
            let seq = self.cursor;
            self.cursor += 1;
            if !entry.acked {
                return Some((seq, entry.message.clone()));
            }
        }
    }

    /// Marks `seq` acknowledged and frees the acknowledged prefix.
    pub fn ack(&mut self, seq: u64) {
        let Some(idx) = seq
            .checked_sub(self.front_seq)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(e) = self.entries.get_mut(idx).filter(|e| !e.acked) {
            e.acked = true;
            self.unacked -= 1;
        }
        while self.entries.front().is_some_and(|e| e.acked) {
            self.entries.pop_front();
            self.front_seq += 1;
        }
        self.cursor = self.cursor.max(self.front_seq);
    }

    /// The fates of its messages (see [`super::Settled`]).
    pub fn settle(&self) -> super::Settled {
        super::Settled {
            next_seq: self.next_seq(),
            low: self.front_seq,
            acked: (self.front_seq..)
                .zip(&self.entries)
                .filter(|(_, e)| e.acked)
                .map(|(seq, _)| seq)
                .collect(),
            ..super::Settled::default()
        }
    }

    /// What became of `seq` (a memory queue never drops).
    pub fn fate(&self, seq: u64) -> super::Fate {
        let idx = seq
            .checked_sub(self.front_seq)
            .and_then(|i| usize::try_from(i).ok());
        match idx {
            None => super::Fate::Acked,
            Some(i) => match self.entries.get(i) {
                Some(e) if e.acked => super::Fate::Acked,
                _ => super::Fate::Pending,
            },
        }
    }

    /// Sends the reader back to the oldest unacknowledged message.
    pub fn rewind(&mut self) {
        self.cursor = self.front_seq;
    }
}
