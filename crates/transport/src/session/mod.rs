//! The MQTT session: a cloneable handle over one connection that confirms QoS 1 publishes,
//! waits for SUBACKs, reconnects with back-off, re-subscribes and resends from the outbox.
//!
//! Two tasks run per session: the driver (owns the connection, see `link.rs`; never cancelled
//! mid-write, so no packet is half-written; its failure policy is `policy.rs`) and the persister
//! (hands spool acknowledgements to the spool's writer thread on an interval). Handles put
//! messages into the outbox and, under one lock, encode the packets (PUBLISH with a packet id
//! from `tracker.rs`, SUBSCRIBE, PUBACK) into a shared buffer that the driver writes out in one
//! go: everything queued since its last write leaves in one syscall. Incoming messages wait in
//! a byte-bounded queue (`inbox.rs`) until the application takes them.

mod driver;
mod inbox;
mod link;
mod options;
mod policy;
mod tracker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rumqttc::mqttbytes::v4;
use tokio::sync::{Notify, broadcast, oneshot, watch};
use tokio::task::JoinSet;

pub use inbox::Incoming;
pub(crate) use link::LinkError;
pub use options::{EventHook, OptionsError, ResendHook, SessionOptions, StartMode};

use crate::error::ConnectError;
use crate::message::{Message, Qos, Received};
use crate::outbox::{Dropped, Fate, Outbox, OutboxError, Settled};
use crate::topic::{self, TopicError};
use inbox::Inbox;
use tracker::Tracker;

/// Something that happened to the session, for reporters and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// CONNACK received.
    Connected {
        /// Counts connections of this session, from 1.
        connection: u64,
        /// Whether the broker resumed a stored session.
        session_present: bool,
    },
    /// The connection ended or an attempt failed.
    Disconnected {
        /// Why, as a sentence.
        reason: String,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// Delay before the attempt.
        delay: Duration,
        /// Failed attempts in a row.
        attempt: u32,
    },
    /// A full spool dropped its oldest messages.
    Dropped {
        /// How many unacknowledged messages were lost.
        count: u64,
    },
    /// An incoming message was over the packet limit: read off the connection without being
    /// held, acknowledged, and handed over with only its first bytes.
    Oversized {
        /// Its topic.
        topic: String,
        /// Its payload size in bytes.
        size: usize,
    },
    /// The broker refused a subscription.
    SubscribeRefused {
        /// The filter.
        filter: String,
    },
    /// The session stopped for good.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The session's state at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Connected now.
    pub connected: bool,
    /// Connections made so far.
    pub connections: u64,
    /// Messages accepted but not yet acknowledged.
    pub unacked: u64,
    /// Messages acknowledged by the broker (QoS 1) or written (QoS 0) in this run.
    pub acked: u64,
    /// Messages a full spool dropped in this run.
    pub dropped: u64,
    /// Messages whose spool records were found damaged (skipped, not sent) in this run.
    pub lost: u64,
    /// The last connection failure, if any since the last success.
    pub last_error: Option<ConnectError>,
    /// Set when the session gave up (a permanent failure) or was closed.
    pub ended: Option<String>,
}

/// Why a publish was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Bad topic.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Larger than the packet limit.
    #[error("payload of {size} bytes on `{topic}` exceeds the packet limit of {max} bytes")]
    TooLarge {
        /// Topic.
        topic: String,
        /// Payload size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The session ended and the outbox is not durable.
    #[error("the session has ended ({0}); the message was not accepted")]
    Ended(String),
    /// The spool closed before the message was stored.
    #[error("the spool closed before the message was stored; it was not accepted")]
    NotStored,
}

/// How a publish ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// A full spool dropped it before it was sent.
    #[error("dropped from the full spool before it could be sent")]
    Dropped,
    /// The session ended before the broker confirmed it (it stays in a disk spool).
    #[error("not confirmed before the session ended")]
    NotConfirmed,
    /// Its spool record was found damaged, so it cannot be sent.
    #[error("its spool record was damaged; it cannot be sent")]
    Lost,
}

/// Why a subscribe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Bad filter.
    #[error(transparent)]
    Filter(#[from] TopicError),
    /// SUBACK said no.
    #[error("the broker refused the subscription to {}", .0.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    Refused(Vec<String>),
    /// The session ended first.
    #[error("the session ended before the broker answered the subscription")]
    Ended,
}

/// A pending confirmation of one accepted message. Holding one costs nothing while the message
/// waits (a million spooled messages need no million waiters); awaiting [`Delivery::confirmed`]
/// registers the wait.
#[derive(Debug)]
pub struct Delivery {
    seq: u64,
    shared: Weak<Shared>,
}

impl Delivery {
    /// The message's sequence number in the outbox.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Resolves when the broker acknowledged the message (QoS 1) or it was written (QoS 0).
    /// After `Session::close` an unconfirmed message is `NotConfirmed` (a disk spool keeps it).
    pub async fn confirmed(self) -> Result<(), DeliveryError> {
        let Some(shared) = self.shared.upgrade() else {
            return Err(DeliveryError::NotConfirmed);
        };
        let rx = {
            let mut inner = shared.lock();
            let fate = match &inner.released {
                Some(settled) => settled.fate(self.seq),
                None => inner.outbox.fate(self.seq),
            };
            match fate {
                Fate::Acked => return Ok(()),
                Fate::Dropped => return Err(DeliveryError::Dropped),
                Fate::Lost => return Err(DeliveryError::Lost),
                Fate::Pending if inner.released.is_some() => {
                    return Err(DeliveryError::NotConfirmed);
                }
                Fate::Pending => {}
            }
            if inner.status.ended.is_some() && !inner.outbox.is_durable() {
                return Err(DeliveryError::NotConfirmed);
            }
            let (tx, rx) = oneshot::channel();
            inner.waiters.insert(self.seq, tx);
            rx
        };
        drop(shared);
        rx.await.unwrap_or(Err(DeliveryError::NotConfirmed))
    }
}

/// A message taken by [`Session::enqueue`], on its way into the outbox.
#[derive(Debug)]
pub struct Accepting {
    delivery: Delivery,
    /// For a disk spool: the writer's accepted watermark to wait for.
    stored: Option<watch::Receiver<u64>>,
}

impl Accepting {
    /// Resolves once the message is accepted: at once for a memory outbox; for a disk spool
    /// once its record is stored under the spool's sync policy (see `SpoolSync`). `Err` means
    /// it was not accepted.
    pub async fn accepted(self) -> Result<Delivery, PublishError> {
        if let Some(mut rx) = self.stored {
            let seq = self.delivery.seq;
            rx.wait_for(|v| *v > seq)
                .await
                .map_err(|_| PublishError::NotStored)?;
        }
        Ok(self.delivery)
    }

    /// The message's sequence number in the outbox.
    pub fn seq(&self) -> u64 {
        self.delivery.seq
    }
}

struct SubWaiter {
    filters: Vec<String>,
    tx: oneshot::Sender<Result<(), SubscribeError>>,
}

struct SubRequest {
    filters: Vec<String>,
    waiters: Vec<SubWaiter>,
}

/// Everything shared between handles and the driver, behind one lock.
struct Inner {
    outbox: Outbox,
    tracker: Tracker,
    /// Packets for the current connection, encoded, waiting for the driver to write them.
    wbuf: bytes::BytesMut,
    /// Outbox seqs of the QoS 0 publishes in `wbuf` (complete once written).
    qos0_queued: Vec<u64>,
    /// `wbuf` ends with DISCONNECT: the driver stops after writing it.
    disconnect_queued: bool,
    /// One past the highest seq handed to a connection.
    handed_up_to: u64,
    /// Seqs below this were sent before (or left by an earlier run): resends.
    resend_below: u64,
    on_resend: Option<ResendHook>,
    connected: bool,
    connection: u64,
    closing: bool,
    /// `close` released the outbox (it holds a placeholder now) and kept what it knew of each
    /// message's fate, so a `Delivery` first awaited after `close` still learns its ack.
    released: Option<Settled>,
    /// Spool losses already reported.
    lost_reported: u64,
    /// Every filter this session wants, re-sent on each connection.
    subscriptions: Vec<(String, Qos)>,
    sub_requests: HashMap<u64, SubRequest>,
    /// Subscribe waiters for the next connection.
    orphan_waiters: Vec<SubWaiter>,
    next_sub_id: u64,
    waiters: HashMap<u64, oneshot::Sender<Result<(), DeliveryError>>>,
    status: Status,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes publishers waiting for room in the outbox.
    room: Arc<Notify>,
    /// Wakes the driver: packets are waiting in `wbuf`, or spooled messages became readable.
    wake: Arc<Notify>,
    /// TLS settings for `mqtts` and `wss` endpoints, built once.
    tls: Option<Arc<rustls::ClientConfig>>,
    status: watch::Sender<Status>,
    events: broadcast::Sender<SessionEvent>,
    opts: SessionOptions,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in this module; the data stays usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, event: SessionEvent) {
        if let Some(hook) = &self.opts.on_event {
            (hook.0)(&event);
        }
        let _ = self.events.send(event);
    }

    fn publish_status(&self, inner: &Inner) {
        self.status.send_if_modified(|s| {
            if *s == inner.status {
                false
            } else {
                s.clone_from(&inner.status);
                true
            }
        });
    }
}

impl Inner {
    /// Encodes outbox messages for the driver while connected and the window has room.
    fn feed(&mut self) {
        while self.connected && !self.closing && self.tracker.has_room() {
            let Some((seq, msg)) = self.outbox.next_unsent() else {
                break;
            };
            let assigned = self.tracker.publish(seq, msg.qos);
            if msg.qos == Qos::AtMostOnce {
                self.qos0_queued.push(seq);
            }
            self.handed_up_to = self.handed_up_to.max(seq + 1);
            let rewritten = match &self.on_resend {
                Some(hook) if seq < self.resend_below => (hook.0)(&msg),
                _ => None,
            };
            let payload = rewritten.unwrap_or(msg.payload);
            let mut p = v4::Publish::from_bytes(msg.topic, msg.qos.to_rumqttc(), payload);
            p.retain = msg.retain;
            p.pkid = assigned.pkid;
            p.dup = assigned.dup;
            self.encode(&v4::Packet::Publish(p));
        }
        self.settle_lost();
    }

    /// Resolves the waiters of messages a damaged spool lost (found while feeding).
    fn settle_lost(&mut self) {
        let lost = self.outbox.lost();
        if lost == self.lost_reported {
            return;
        }
        self.lost_reported = lost;
        self.status.lost = lost;
        self.status.unacked = self.outbox.unacked();
        let gone: Vec<u64> = self
            .waiters
            .keys()
            .copied()
            .filter(|s| self.outbox.fate(*s) == Fate::Lost)
            .collect();
        for seq in gone {
            if let Some(tx) = self.waiters.remove(&seq) {
                let _ = tx.send(Err(DeliveryError::Lost));
            }
        }
    }

    fn encode(&mut self, packet: &v4::Packet) {
        // Sizes and topics were checked when accepted, so this cannot fail in practice.
        if let Err(e) = link::encode(packet, &mut self.wbuf) {
            tracing::error!("{e}");
        }
    }

    /// Drops what was encoded for a connection that is gone.
    fn discard_unwritten(&mut self) {
        self.wbuf.clear();
        self.qos0_queued.clear();
        self.disconnect_queued = false;
    }

    fn complete(&mut self, seq: u64) {
        self.outbox.ack(seq);
        self.status.acked += 1;
        self.status.unacked = self.outbox.unacked();
        if let Some(tx) = self.waiters.remove(&seq) {
            let _ = tx.send(Ok(()));
        }
    }

    fn dropped(&mut self, d: Dropped) {
        self.status.dropped += d.count;
        let gone: Vec<u64> = self
            .waiters
            .keys()
            .copied()
            .filter(|s| *s < d.below_seq && self.outbox.fate(*s) == Fate::Dropped)
            .collect();
        for seq in gone {
            if let Some(tx) = self.waiters.remove(&seq) {
                let _ = tx.send(Err(DeliveryError::Dropped));
            }
        }
    }

    fn send_subscribe(&mut self, filters: Vec<(String, Qos)>, waiters: Vec<SubWaiter>) {
        if filters.is_empty() {
            for w in waiters {
                let _ = w.tx.send(Ok(()));
            }
            return;
        }
        let id = self.next_sub_id;
        self.next_sub_id += 1;
        let names = filters.iter().map(|(f, _)| f.clone()).collect();
        let mut sub = v4::Subscribe::new_many(
            filters
                .into_iter()
                .map(|(f, q)| v4::SubscribeFilter::new(f, q.to_rumqttc())),
        );
        sub.pkid = self.tracker.subscribe(id);
        self.encode(&v4::Packet::Subscribe(sub));
        self.sub_requests.insert(
            id,
            SubRequest {
                filters: names,
                waiters,
            },
        );
    }
}

/// A connection to one broker. Cheap to clone; all clones drive the same connection.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
    stop: watch::Sender<bool>,
}

/// What `Session::close` leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseSummary {
    /// Acknowledged in this run.
    pub acked: u64,
    /// Accepted and not acknowledged.
    pub unacked: u64,
    /// Whether those unacknowledged messages are in a disk spool (sent on the next start).
    pub spooled: bool,
    /// Dropped by a full spool in this run.
    pub dropped: u64,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Bad options.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The first connection failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

impl Session {
    /// Starts the session over `outbox` (anything already in a disk spool is sent first).
    pub async fn start(
        opts: SessionOptions,
        outbox: Outbox,
    ) -> Result<(Session, Incoming), StartError> {
        let tls = opts.checked_tls()?;
        let inbox = Inbox::new(opts.incoming_bytes);
        let unacked = outbox.unacked();
        let first_new = outbox.next_seq();
        let status = Status {
            unacked,
            lost: outbox.lost(),
            ..Status::default()
        };
        let room = Arc::new(Notify::new());
        let wake = Arc::new(Notify::new());
        if let Outbox::Disk(spool) = &outbox {
            let (room, wake) = (room.clone(), wake.clone());
            // The spool's writer stored more: publishers may go on, the driver may send it.
            spool.on_progress(Arc::new(move || {
                room.notify_waiters();
                wake.notify_one();
            }));
        }
        let inner = Inner {
            lost_reported: outbox.lost(),
            outbox,
            tracker: Tracker::new(usize::from(opts.inflight)),
            wbuf: bytes::BytesMut::new(),
            qos0_queued: Vec::new(),
            disconnect_queued: false,
            handed_up_to: first_new,
            resend_below: first_new,
            on_resend: opts.on_resend.clone(),
            connected: false,
            connection: 0,
            closing: false,
            released: None,
            subscriptions: Vec::new(),
            sub_requests: HashMap::new(),
            orphan_waiters: Vec::new(),
            next_sub_id: 1,
            waiters: HashMap::new(),
            status: status.clone(),
        };
        let start_mode = opts.start_mode;
        let manual_acks = opts.manual_acks;
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            room,
            wake,
            tls,
            status: watch::channel(status).0,
            events: broadcast::channel(opts.event_capacity).0,
            opts,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(driver::run(shared.clone(), inbox.clone(), stop_rx.clone()));
        tasks.spawn(driver::persist_loop(shared.clone(), stop_rx));
        let incoming = Incoming::new(inbox, (!manual_acks).then(|| Arc::downgrade(&shared)));
        let session = Session {
            shared,
            tasks: Arc::new(Mutex::new(Some(tasks))),
            stop,
        };
        if start_mode != StartMode::Background {
            let mut rx = session.shared.status.subscribe();
            let one_shot = start_mode == StartMode::RequireConnection;
            let outcome = rx
                .wait_for(|s| {
                    s.connected || s.ended.is_some() || (one_shot && s.last_error.is_some())
                })
                .await
                .map(|s| (s.connected, s.last_error.clone(), s.ended.clone()));
            match outcome {
                Ok((true, _, _)) => {}
                Ok((false, Some(err), _)) if one_shot => {
                    session.abort().await;
                    return Err(StartError::Connect(err));
                }
                other => {
                    session.abort().await;
                    let ended = other.ok().and_then(|(_, _, ended)| ended);
                    return Err(StartError::Connect(ConnectError::Lost {
                        endpoint: session.shared.opts.endpoint.to_string(),
                        detail: ended
                            .unwrap_or_else(|| "the session ended before connecting".into()),
                    }));
                }
            }
        }
        Ok((session, incoming))
    }

    /// Accepts a message into the outbox and returns its pending confirmation. Waits while the
    /// outbox is full (a memory outbox; a disk spool drops its oldest instead) and, for a disk
    /// spool, until the message is stored under the spool's sync policy. `Err` means the
    /// message was not accepted.
    pub async fn publish(&self, msg: Message) -> Result<Delivery, PublishError> {
        self.enqueue(msg).await?.accepted().await
    }

    /// Takes a message into the outbox, in call order, without waiting for a disk spool to
    /// store it: a publisher that keeps several [`Accepting`]s in flight lets the spool store
    /// them with one write and one sync (group commit).
    pub async fn enqueue(&self, msg: Message) -> Result<Accepting, PublishError> {
        topic::validate_name(&msg.topic)?;
        let max = self.shared.opts.max_packet_size;
        if msg.payload.len() + msg.topic.len() + 4 > max {
            return Err(PublishError::TooLarge {
                topic: msg.topic,
                size: msg.payload.len(),
                max,
            });
        }
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.shared.lock();
                if let Some(ended) = &inner.status.ended
                    && (!inner.outbox.is_durable() || inner.released.is_some())
                {
                    return Err(PublishError::Ended(ended.clone()));
                }
                if inner.outbox.has_room() {
                    let (seq, dropped) = inner.outbox.push(msg)?;
                    let stored = match &inner.outbox {
                        Outbox::Disk(spool) => Some(spool.accepted()),
                        Outbox::Memory(_) => None,
                    };
                    inner.status.unacked = inner.outbox.unacked();
                    if let Some(d) = dropped {
                        inner.dropped(d);
                        tracing::warn!(
                            "spool full: dropped the {} oldest unsent message(s) to make room ({})",
                            d.count,
                            self.shared.opts.spool_full_hint
                        );
                        self.shared.emit(SessionEvent::Dropped { count: d.count });
                    }
                    inner.feed();
                    self.shared.publish_status(&inner);
                    drop(inner);
                    self.shared.wake.notify_one();
                    return Ok(Accepting {
                        delivery: Delivery {
                            seq,
                            shared: Arc::downgrade(&self.shared),
                        },
                        stored,
                    });
                }
            }
            notified.await;
        }
    }

    /// Subscribes and waits for the SUBACK; re-sent on every reconnect.
    pub async fn subscribe(&self, filters: &[(String, Qos)]) -> Result<(), SubscribeError> {
        for (f, _) in filters {
            topic::validate_filter(f)?;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.shared.lock();
            if inner.status.ended.is_some() {
                return Err(SubscribeError::Ended);
            }
            for (f, q) in filters {
                match inner.subscriptions.iter_mut().find(|(have, _)| have == f) {
                    Some(entry) => entry.1 = *q,
                    None => inner.subscriptions.push((f.clone(), *q)),
                }
            }
            let waiter = SubWaiter {
                filters: filters.iter().map(|(f, _)| f.clone()).collect(),
                tx,
            };
            if inner.connected {
                inner.send_subscribe(filters.to_vec(), vec![waiter]);
            } else {
                inner.orphan_waiters.push(waiter);
            }
        }
        self.shared.wake.notify_one();
        rx.await.unwrap_or(Err(SubscribeError::Ended))
    }

    /// Acknowledges an incoming QoS 1 message (with `manual_acks`). An ack for a message from an
    /// earlier connection is not sent: the broker will deliver that message again.
    pub fn ack(&self, msg: &Received) {
        self.ack_all(std::slice::from_ref(msg));
    }

    /// Acknowledges incoming QoS 1 messages in the order given (MQTT wants PUBACKs in receive
    /// order); they leave in one write.
    pub fn ack_all(&self, msgs: &[Received]) {
        ack_received(&self.shared, msgs);
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// A receiver of session events.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.shared.events.subscribe()
    }

    /// Waits until every accepted message is acknowledged, the session ends, or `timeout` passes.
    /// Returns the number still unacknowledged.
    pub async fn flush(&self, timeout: Duration) -> u64 {
        let mut rx = self.shared.status.subscribe();
        let _ = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.unacked == 0 || s.ended.is_some()),
        )
        .await;
        self.shared.lock().outbox.unacked()
    }

    /// Stops taking work, waits up to `grace` for in-flight acknowledgements, sends DISCONNECT,
    /// saves the spool and ends the tasks.
    pub async fn close(&self, grace: Duration) -> CloseSummary {
        self.shared.lock().closing = true;
        let deadline = tokio::time::Instant::now() + grace;
        let mut rx = self.shared.status.subscribe();
        loop {
            let (in_flight, connected) = {
                let inner = self.shared.lock();
                (inner.tracker.in_flight(), inner.connected)
            };
            if in_flight == 0 || !connected {
                break;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        let sent_disconnect = {
            let mut inner = self.shared.lock();
            if inner.connected {
                inner.encode(&v4::Packet::Disconnect);
                inner.disconnect_queued = true;
            }
            inner.connected
        };
        self.shared.wake.notify_one();
        if sent_disconnect {
            // The driver ends by itself once DISCONNECT is written.
            self.join_tasks(Duration::from_secs(2)).await;
        }
        self.abort().await;
        let mut inner = self.shared.lock();
        inner.outbox.sync();
        let summary = CloseSummary {
            acked: inner.status.acked,
            unacked: inner.outbox.unacked(),
            spooled: inner.outbox.is_durable(),
            dropped: inner.status.dropped,
        };
        // Release the spool (and its lock) now, even while clones of this handle live on.
        inner.released = Some(inner.outbox.settle());
        drop(std::mem::replace(&mut inner.outbox, Outbox::memory(1)));
        inner.status.connected = false;
        inner.status.ended.get_or_insert_with(|| "closed".into());
        self.shared.publish_status(&inner);
        summary
    }

    async fn join_tasks(&self, limit: Duration) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut tasks) = tasks {
            let _ = self.stop.send(false);
            let joined = tokio::time::timeout(limit, async {
                // The persister only stops on the stop signal; the driver stops on DISCONNECT.
                if tasks.join_next().await.is_some() {
                    let _ = self.stop.send(true);
                    while tasks.join_next().await.is_some() {}
                }
            })
            .await;
            if joined.is_err() {
                tasks.abort_all();
            }
        }
    }

    async fn abort(&self) {
        let _ = self.stop.send(true);
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut tasks) = tasks
            && tokio::time::timeout(Duration::from_secs(2), async {
                while tasks.join_next().await.is_some() {}
            })
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        let mut inner = self.shared.lock();
        inner.connected = false;
        for (_, tx) in inner.waiters.drain() {
            let _ = tx.send(Err(DeliveryError::NotConfirmed));
        }
    }
}

/// Acknowledges incoming QoS 1 messages of the current connection, in the order given (MQTT
/// wants PUBACKs in receive order); they leave in one write. A message from an earlier
/// connection is not acknowledged: the broker sends it again.
fn ack_received(shared: &Shared, msgs: &[Received]) {
    let mut inner = shared.lock();
    if !inner.connected {
        return;
    }
    let connection = inner.connection;
    let mut any = false;
    for m in msgs {
        if m.qos == Qos::AtLeastOnce && m.connection == connection {
            inner.encode(&v4::Packet::PubAck(v4::PubAck::new(m.pkid)));
            any = true;
        }
    }
    drop(inner);
    if any {
        shared.wake.notify_one();
    }
}
