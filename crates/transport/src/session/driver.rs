//! The driver task: connects (`link.rs`), writes what handles encoded, reads and dispatches
//! the broker's packets (PUBACK and SUBACK answers, incoming messages), pings, and reconnects
//! with back-off. The persister task saves spool acknowledgements on an interval.

use std::collections::VecDeque;
use std::sync::Arc;

use rumqttc::mqttbytes::v4::{self, Packet};
use rumqttc::{QoS, SubscribeReasonCode};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::link::{self, Link, LinkError};
use super::tracker::Completed;
use super::{SessionEvent, Shared, SubWaiter};
use crate::backoff::Backoff;
use crate::error::classify;
use crate::message::{Qos, Received};

pub(super) async fn run(
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Received>,
    mut stop: watch::Receiver<bool>,
) {
    let opts = &shared.opts;
    let mut backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
    loop {
        let attempt = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = link::open(opts, shared.tls.as_ref()) => r,
        };
        let failure = match attempt {
            Ok((mut link, session_present)) => {
                backoff.reset();
                on_connected(&shared, session_present);
                match serve(&shared, &mut link, &incoming, &mut stop).await {
                    Ok(()) => break,
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        let err = classify(&failure, &opts.endpoint, opts.connect_timeout_secs());
        let permanent = err.is_permanent();
        on_disconnected(&shared, &err, permanent);
        if permanent {
            break;
        }
        let delay = backoff.next_delay(fastrand::f64());
        tracing::info!(
            "reconnecting to {} in {} ms (attempt {})",
            opts.endpoint,
            delay.as_millis(),
            backoff.attempts()
        );
        shared.emit(SessionEvent::Reconnecting {
            delay,
            attempt: backoff.attempts(),
        });
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    let mut inner = shared.lock();
    inner.connected = false;
    inner.status.connected = false;
    shared.publish_status(&inner);
}

/// Runs one connection until it fails (`Err`), the session stops or DISCONNECT is written.
async fn serve(
    shared: &Shared,
    link: &mut Link,
    incoming: &mpsc::Sender<Received>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let keep_alive = shared.opts.keep_alive;
    let auto_ack = !shared.opts.manual_acks;
    let coalesce = shared.opts.read_coalesce;
    let connection = shared.lock().connection;
    let mut last_write = Instant::now();
    let mut ping_sent = false;
    // Parsed messages the reader has no room for yet; the socket is not read meanwhile, so the
    // broker holds back the rest.
    let mut backlog: VecDeque<Received> = VecDeque::new();
    let mut qos0_written = Vec::new();
    // The broker may have sent more right behind the CONNACK (messages queued for a persistent
    // session), already in the read buffer: nothing else may come for a keep-alive interval.
    let early = drain_packets(link)?;
    dispatch(
        shared,
        early,
        connection,
        auto_ack,
        &mut backlog,
        &mut ping_sent,
    )?;
    loop {
        // Write until nothing is queued: completing QoS 0 publishes makes room for more.
        loop {
            let disconnect = {
                let mut inner = shared.lock();
                std::mem::swap(&mut inner.wbuf, &mut link.wbuf);
                std::mem::swap(&mut inner.qos0_queued, &mut qos0_written);
                std::mem::take(&mut inner.disconnect_queued)
            };
            if link.wbuf.is_empty() {
                break;
            }
            link.flush().await?;
            last_write = Instant::now();
            if disconnect {
                return Ok(());
            }
            if !qos0_written.is_empty() {
                let mut inner = shared.lock();
                inner.tracker.written(qos0_written.len());
                for seq in qos0_written.drain(..) {
                    inner.complete(seq);
                }
                refill(shared, &mut inner);
            }
        }
        while let Some(msg) = backlog.pop_front() {
            match incoming.try_send(msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    backlog.push_front(msg);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::trace!(
                        "incoming message dropped: nobody reads this session's messages"
                    );
                }
            }
        }
        let ping_due = last_write + keep_alive;
        let step = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => Step::Stop,
            () = shared.wake.notified() => Step::Write,
            read = link.fill(), if backlog.is_empty() => Step::Read(read),
            permit = incoming.reserve(), if !backlog.is_empty() => {
                match permit {
                    Ok(permit) => {
                        if let Some(msg) = backlog.pop_front() {
                            permit.send(msg);
                        }
                    }
                    Err(_) => backlog.clear(),
                }
                Step::Write
            }
            () = tokio::time::sleep_until(ping_due), if !keep_alive.is_zero() => Step::Ping,
        };
        match step {
            Step::Stop => return Ok(()),
            Step::Write => {}
            Step::Read(read) => {
                read?;
                if !coalesce.is_zero() {
                    // Let a busy stream gather so it arrives in few large reads (fewer wake-ups
                    // here and fewer scheduling delays for the broker on a small machine).
                    tokio::time::sleep(coalesce).await;
                    link.fill_now()?;
                }
                let packets = drain_packets(link)?;
                dispatch(
                    shared,
                    packets,
                    connection,
                    auto_ack,
                    &mut backlog,
                    &mut ping_sent,
                )?;
            }
            Step::Ping => {
                if ping_sent {
                    return Err(LinkError::PingTimeout);
                }
                ping_sent = true;
                shared.lock().encode(&Packet::PingReq);
            }
        }
    }
}

/// What woke the connection loop.
enum Step {
    Stop,
    Write,
    Read(Result<(), LinkError>),
    Ping,
}

/// Every complete packet in the read buffer.
fn drain_packets(link: &mut Link) -> Result<Vec<Packet>, LinkError> {
    let mut packets = Vec::new();
    while let Some(p) = link.next_packet()? {
        packets.push(p);
    }
    Ok(packets)
}

/// Handles one read's worth of packets under one lock.
fn dispatch(
    shared: &Shared,
    packets: Vec<Packet>,
    connection: u64,
    auto_ack: bool,
    backlog: &mut VecDeque<Received>,
    ping_sent: &mut bool,
) -> Result<(), LinkError> {
    let mut inner = shared.lock();
    let mut completed = false;
    let mut subacks = Vec::new();
    for packet in packets {
        match packet {
            Packet::PubAck(ack) => {
                if let Some(Completed::Message(seq)) = inner.tracker.on_puback(ack.pkid) {
                    inner.complete(seq);
                    completed = true;
                }
            }
            Packet::Publish(p) => {
                let qos = match p.qos {
                    QoS::AtMostOnce => Qos::AtMostOnce,
                    QoS::AtLeastOnce => Qos::AtLeastOnce,
                    QoS::ExactlyOnce => {
                        return Err(LinkError::Protocol(format!(
                            "the broker sent a QoS 2 message on `{}`, but every subscription asked for QoS 1 at most",
                            p.topic
                        )));
                    }
                };
                if auto_ack && qos == Qos::AtLeastOnce {
                    inner.encode(&Packet::PubAck(v4::PubAck::new(p.pkid)));
                }
                backlog.push_back(Received {
                    qos,
                    topic: p.topic,
                    payload: p.payload,
                    retain: p.retain,
                    dup: p.dup,
                    pkid: p.pkid,
                    connection,
                });
            }
            Packet::SubAck(ack) => subacks.push(ack),
            Packet::PingResp => *ping_sent = false,
            other => {
                return Err(LinkError::Protocol(format!(
                    "unexpected {} from the broker",
                    link::packet_name(&other)
                )));
            }
        }
    }
    if completed {
        refill(shared, &mut inner);
    }
    drop(inner);
    for ack in subacks {
        on_suback(shared, &ack);
    }
    Ok(())
}

fn refill(shared: &Shared, inner: &mut super::Inner) {
    if let Err(e) = inner.feed() {
        tracing::error!("{e}");
    }
    inner.status.unacked = inner.outbox.unacked();
    shared.publish_status(inner);
    shared.room.notify_waiters();
}

fn on_connected(shared: &Shared, session_present: bool) {
    let mut inner = shared.lock();
    inner.connected = true;
    inner.connection += 1;
    inner.status.connected = true;
    inner.status.connections = inner.connection;
    inner.status.last_error = None;
    let connection = inner.connection;
    tracing::info!(
        "connected to {} (connection {connection}, session present: {session_present})",
        shared.opts.endpoint
    );
    inner.discard_unwritten();
    let all = inner.subscriptions.clone();
    let waiters: Vec<SubWaiter> = std::mem::take(&mut inner.orphan_waiters);
    inner.send_subscribe(all, waiters);
    refill(shared, &mut inner);
    drop(inner);
    shared.emit(SessionEvent::Connected {
        connection,
        session_present,
    });
}

fn on_suback(shared: &Shared, ack: &v4::SubAck) {
    let mut inner = shared.lock();
    let Some(Completed::Subscribe(id)) = inner.tracker.on_suback(ack.pkid) else {
        return;
    };
    let Some(req) = inner.sub_requests.remove(&id) else {
        return;
    };
    drop(inner);
    let refused: Vec<String> = req
        .filters
        .iter()
        .zip(&ack.return_codes)
        .filter(|(_, code)| matches!(code, SubscribeReasonCode::Failure))
        .map(|(f, _)| f.clone())
        .collect();
    for f in &refused {
        tracing::warn!("the broker refused the subscription to `{f}`");
        shared.emit(SessionEvent::SubscribeRefused { filter: f.clone() });
    }
    for w in req.waiters {
        let mine: Vec<String> = w
            .filters
            .iter()
            .filter(|f| refused.contains(f))
            .cloned()
            .collect();
        let _ = w.tx.send(if mine.is_empty() {
            Ok(())
        } else {
            Err(super::SubscribeError::Refused(mine))
        });
    }
}

fn on_disconnected(shared: &Shared, err: &crate::error::ConnectError, permanent: bool) {
    let mut inner = shared.lock();
    let was_connected = inner.connected;
    inner.connected = false;
    // Packets encoded for the lost connection are void: the outbox resends unacknowledged
    // messages, and the broker resends the messages whose PUBACKs were not written.
    inner.discard_unwritten();
    inner.resend_below = inner.handed_up_to;
    let open = inner.tracker.reset();
    for id in open {
        if let Some(req) = inner.sub_requests.remove(&id) {
            inner.orphan_waiters.extend(req.waiters);
        }
    }
    inner.outbox.rewind();
    inner.status.connected = false;
    inner.status.last_error = Some(err.clone());
    if permanent {
        inner.status.ended = Some(err.to_string());
        for w in std::mem::take(&mut inner.orphan_waiters) {
            let _ = w.tx.send(Err(super::SubscribeError::Ended));
        }
    }
    shared.publish_status(&inner);
    drop(inner);
    if was_connected {
        tracing::warn!("{err}");
    } else {
        tracing::info!("{err}");
    }
    shared.emit(SessionEvent::Disconnected {
        reason: err.to_string(),
    });
    if permanent {
        // Before the first connection a caller waiting for it gets this error back and reports it.
        if reported_by_caller(shared) {
            tracing::info!("giving up: {err}");
        } else {
            tracing::error!("giving up: {err}");
        }
        shared.emit(SessionEvent::Failed {
            reason: err.to_string(),
        });
    }
    shared.room.notify_waiters();
}

fn reported_by_caller(shared: &Shared) -> bool {
    shared.opts.start_mode == super::StartMode::RequireConnection && shared.lock().connection == 0
}

pub(super) async fn persist_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.opts.persist_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tick.tick() => {
                if let Err(e) = shared.lock().outbox.persist() {
                    tracing::error!("{e}");
                }
            }
        }
    }
}
