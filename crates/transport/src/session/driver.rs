//! The driver task: polls rumqttc's event loop, turns its events into outbox acknowledgements,
//! SUBACK answers and incoming messages, and reconnects with back-off. The persister task saves
//! spool acknowledgements on an interval.

use std::sync::Arc;

use rumqttc::{Event, EventLoop, Outgoing, Packet, SubscribeReasonCode};
use tokio::sync::{mpsc, watch};

use super::tracker::Completed;
use super::{SessionEvent, Shared, SubWaiter};
use crate::backoff::Backoff;
use crate::error::{ConnectError, classify};
use crate::message::{Qos, Received};

pub(super) async fn run(
    shared: Arc<Shared>,
    mut eventloop: EventLoop,
    incoming: mpsc::Sender<Received>,
    mut stop: watch::Receiver<bool>,
) {
    let opts = &shared.opts;
    let mut backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
    loop {
        // Cancelling poll() is only done on stop: mid-connection it could lose a half-written packet.
        let polled = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = eventloop.poll() => r,
        };
        if polled.is_ok() {
            let mut inner = shared.lock();
            if !inner.pending_acks.is_empty() {
                inner.drain_acks();
            }
        }
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                on_connected(&shared, ack.session_present);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let mut inner = shared.lock();
                if let Some(Completed::Message(seq)) = inner.tracker.on_puback(ack.pkid) {
                    inner.complete(seq);
                    refill(&shared, &mut inner);
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut inner = shared.lock();
                if let Some(Completed::Message(seq)) = inner.tracker.on_outgoing_publish(pkid) {
                    inner.complete(seq);
                    refill(&shared, &mut inner);
                }
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                shared.lock().tracker.on_outgoing_subscribe(pkid);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => on_suback(&shared, &ack),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let connection = shared.lock().connection;
                let msg = Received {
                    qos: if p.qos == rumqttc::QoS::AtMostOnce {
                        Qos::AtMostOnce
                    } else {
                        Qos::AtLeastOnce
                    },
                    topic: p.topic.clone(),
                    payload: p.payload,
                    retain: p.retain,
                    dup: p.dup,
                    pkid: p.pkid,
                    connection,
                };
                // Waiting here stops reading the socket: the broker holds further messages.
                if incoming.send(msg).await.is_err() {
                    tracing::trace!(
                        "incoming message dropped: nobody reads this session's messages"
                    );
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                let err = classify(&e, &opts.endpoint, opts.connect_timeout_secs());
                let permanent = err.is_permanent();
                on_disconnected(&shared, &mut eventloop, &err, permanent);
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
        }
    }
    let mut inner = shared.lock();
    inner.connected = false;
    inner.status.connected = false;
    shared.publish_status(&inner);
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

fn on_suback(shared: &Shared, ack: &rumqttc::SubAck) {
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

fn on_disconnected(
    shared: &Shared,
    eventloop: &mut EventLoop,
    err: &ConnectError,
    permanent: bool,
) {
    let mut inner = shared.lock();
    let was_connected = inner.connected;
    inner.connected = false;
    // Our outbox, not rumqttc, decides what is resent: drop rumqttc's copies (including requests
    // handed over after its own clean-up) and a stuck collision (rumqttc #1014 livelock).
    eventloop.clean();
    eventloop.pending.clear();
    eventloop.state.collision = None;
    // PUBACKs owed on the lost connection are void: the broker resends those messages.
    inner.pending_acks.clear();
    let open = inner.tracker.reset();
    for id in open {
        if let Some(req) = inner.sub_requests.remove(&id) {
            inner.orphan_waiters.extend(req.waiters);
        }
    }
    if let Some((seq, _)) = inner.retry.take() {
        tracing::trace!("message {seq} will be resent after rewind");
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
