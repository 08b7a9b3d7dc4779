//! Messages from the broker waiting for the application, bounded in bytes.
//!
//! The driver puts every PUBLISH it parses here and stops reading the socket while the queue is
//! over its byte budget, so a slow reader holds the broker back (TCP back-pressure) instead of
//! growing memory. A QoS 1 message is acknowledged only once the application has taken it
//! (`Incoming::recv` with automatic acks, `Session::ack` after it is stored with manual ones): a
//! message still in this queue when the process dies was never acknowledged, so the broker
//! sends it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::Notify;

use super::Shared;
use crate::message::{Qos, Received};

/// Bytes a message counts for: topic, payload and a little for the rest of the packet.
fn weight(m: &Received) -> usize {
    m.topic.len() + m.payload.len() + 16
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Received>,
    bytes: usize,
    /// The driver has ended: nothing more will come.
    closed: bool,
    /// The application dropped its `Incoming`: nobody will take anything.
    abandoned: bool,
}

/// The queue shared by the driver (producer) and [`Incoming`] (consumer).
#[derive(Debug)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    budget: usize,
    /// Wakes the reader: a message arrived or the queue closed.
    arrived: Notify,
    /// Wakes the driver: the queue fell below its budget.
    room: Notify,
}

/// What the reader finds.
enum Take {
    Message(Received),
    Closed,
    Empty,
}

/// What happened to a message handed to the inbox.
pub(crate) enum Offer {
    /// Queued for the application.
    Queued,
    /// Nobody reads this session's messages; the message is returned (to be acknowledged so the
    /// broker does not resend it for ever).
    Unwanted(Received),
}

impl Inbox {
    pub(crate) fn new(budget: usize) -> Arc<Self> {
        Arc::new(Inbox {
            state: Mutex::new(State::default()),
            budget: budget.max(1),
            arrived: Notify::new(),
            room: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message. The queue may go over its budget by this one message: a message is
    /// never split or refused, the driver just stops reading until there is room again.
    pub(crate) fn offer(&self, m: Received) -> Offer {
        let mut st = self.lock();
        if st.abandoned {
            return Offer::Unwanted(m);
        }
        st.bytes += weight(&m);
        st.queue.push_back(m);
        drop(st);
        self.arrived.notify_one();
        Offer::Queued
    }

    /// Bytes that may still be queued before the budget is reached (everything if nobody reads
    /// the queue: those messages are only acknowledged and dropped).
    pub(crate) fn room_left(&self) -> usize {
        let st = self.lock();
        if st.abandoned {
            usize::MAX
        } else {
            self.budget.saturating_sub(st.bytes)
        }
    }

    /// Whether the queue is at or over its byte budget (the driver should not read more).
    pub(crate) fn is_full(&self) -> bool {
        let st = self.lock();
        !st.abandoned && st.bytes >= self.budget
    }

    /// Resolves once the queue has drained to half its budget (or nobody reads it any more):
    /// the driver then reads a good share at once instead of a message per wake-up.
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.lock();
                if st.abandoned || st.bytes <= self.budget / 2 {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The driver ended: the reader gets what is queued, then `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_one();
    }

    fn take(&self) -> Take {
        let mut st = self.lock();
        match st.queue.pop_front() {
            Some(m) => {
                let above = st.bytes > self.budget / 2;
                st.bytes -= weight(&m);
                let drained = st.bytes <= self.budget / 2;
                drop(st);
                if above && drained {
                    self.room.notify_one();
                }
                Take::Message(m)
            }
            None if st.closed => Take::Closed,
            None => Take::Empty,
        }
    }

    fn abandon(&self) {
        let mut st = self.lock();
        st.abandoned = true;
        st.queue.clear();
        st.bytes = 0;
        drop(st);
        self.room.notify_one();
    }
}

/// Messages the broker delivers to this session.
#[derive(Debug)]
pub struct Incoming {
    inbox: Arc<Inbox>,
    /// Set when the session acknowledges QoS 1 messages as they are taken here.
    auto_ack: Option<Weak<Shared>>,
}

impl Incoming {
    pub(super) fn new(inbox: Arc<Inbox>, auto_ack: Option<Weak<Shared>>) -> Self {
        Incoming { inbox, auto_ack }
    }

    /// The next message; `None` once the session has ended and every queued message was taken.
    /// With automatic acknowledgements, a QoS 1 message is acknowledged here, as it is handed
    /// over. A message whose payload was over the packet limit comes with `oversized` set and
    /// only the first bytes of its payload (see [`Received::oversized`]).
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            let notified = self.inbox.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.inbox.take() {
                Take::Message(m) => {
                    if let Some(shared) = &self.auto_ack
                        && m.qos == Qos::AtLeastOnce
                        && let Some(shared) = shared.upgrade()
                    {
                        super::ack_received(&shared, std::slice::from_ref(&m));
                    }
                    return Some(m);
                }
                Take::Closed => return None,
                Take::Empty => notified.await,
            }
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.inbox.abandon();
    }
}
