//! The driver task: connects (`link.rs`), writes what handles encoded, reads and dispatches
//! the broker's packets (PUBACK and SUBACK answers, incoming messages), pings, and after a
//! failure asks the failure policy (`policy.rs`) whether and when to try again. The persister
//! task hands spool acknowledgements to the spool's writer on an interval.

use rumqttc::mqttbytes::v4::{self, Packet};
use rumqttc::{QoS, SubscribeReasonCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use super::inbox::{Inbox, Offer};
use super::link::{self, Frame, Link, LinkError, OversizedPublish};
use super::policy::{Next, Policy, Verdict};
use super::tracker::Completed;
use super::{SessionEvent, Shared, SubWaiter};
use crate::error::{ConnectError, classify};
use crate::message::{Qos, Received};

pub(super) async fn run(shared: Arc<Shared>, inbox: Arc<Inbox>, mut stop: watch::Receiver<bool>) {
    let opts = &shared.opts;
    let mut policy = Policy::new(opts, std::time::Instant::now());
    loop {
        let attempt = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = link::open(opts, shared.tls.as_ref()) => r,
        };
        let (failure, up_for) = match attempt {
            Ok((mut link, session_present)) => {
                policy.connected();
                let since = Instant::now();
                on_connected(&shared, session_present);
                match serve(&shared, &mut link, &inbox, &mut stop).await {
                    Ok(()) => break,
                    Err(e) => (e, Some(since.elapsed())),
                }
            }
            Err(e) => (e, None),
        };
        let err = classify(&failure, &opts.endpoint, opts.connect_timeout_secs());
        let verdict = policy.failed(&err, up_for, std::time::Instant::now(), fastrand::f64());
        on_disconnected(&shared, &err, &verdict);
        let Next::Retry(delay) = verdict.next else {
            break;
        };
        tracing::debug!(
            "reconnecting to {} in {} ms (attempt {})",
            opts.endpoint,
            delay.as_millis(),
            verdict.attempt
        );
        shared.emit(SessionEvent::Reconnecting {
            delay,
            attempt: verdict.attempt,
        });
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    inbox.close();
    let mut inner = shared.lock();
    inner.connected = false;
    inner.status.connected = false;
    shared.publish_status(&inner);
}

/// Keep-alive bookkeeping. A PINGRESP can only be seen while the socket is read, so a ping
/// answered while reads were paused (the application is behind) is not a timeout.
#[derive(Debug, Default)]
struct Ping {
    /// A PINGREQ is unanswered.
    sent: bool,
    /// Reads were paused at some point since it was sent.
    blind: bool,
}

/// Runs one connection until it fails (`Err`), the session stops or DISCONNECT is written.
async fn serve(
    shared: &Shared,
    link: &mut Link,
    inbox: &Inbox,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let keep_alive = shared.opts.keep_alive;
    let coalesce = shared.opts.read_coalesce;
    let connection = shared.lock().connection;
    let mut last_write = Instant::now();
    let mut ping = Ping::default();
    let mut qos0_written = Vec::new();
    loop {
        // Frames already read but held back while the inbox was full (or that came right
        // behind the CONNACK: a persistent session's queued messages) are handled first;
        // the socket may have nothing more to say for a keep-alive interval.
        dispatch_buffered(shared, link, inbox, connection, &mut ping)?;
        match write_queued(shared, link, &mut qos0_written).await? {
            Wrote::Disconnect => return Ok(()),
            Wrote::Some => last_write = Instant::now(),
            Wrote::Nothing => {}
        }
        let paused = inbox.is_full();
        ping.blind |= paused;
        let ping_due = last_write + keep_alive;
        let step = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => Step::Stop,
            () = shared.wake.notified() => Step::Write,
            read = link.fill(), if !paused => Step::Read(read),
            () = inbox.room(), if paused => Step::Resume,
            () = tokio::time::sleep_until(ping_due), if !keep_alive.is_zero() => Step::Ping,
        };
        match step {
            Step::Stop => return Ok(()),
            Step::Write | Step::Resume => {}
            Step::Read(read) => {
                read?;
                if !coalesce.is_zero() {
                    // Let a busy stream gather so it arrives in few large reads (fewer wake-ups
                    // here and fewer scheduling delays for the broker on a small machine).
                    tokio::time::sleep(coalesce).await;
                    link.fill_now()?;
                }
            }
            Step::Ping => {
                if ping.sent && !ping.blind {
                    return Err(LinkError::PingTimeout);
                }
                ping = Ping {
                    sent: true,
                    blind: inbox.is_full(),
                };
                shared.lock().encode(&Packet::PingReq);
                last_write = Instant::now();
            }
        }
    }
}

/// What woke the connection loop.
enum Step {
    Stop,
    Write,
    Resume,
    Read(Result<(), LinkError>),
    Ping,
}

/// What [`write_queued`] did.
enum Wrote {
    Nothing,
    Some,
    /// A queued DISCONNECT went out: the connection is done.
    Disconnect,
}

/// Writes until nothing is queued (completing QoS 0 publishes makes room for more, and the
/// spool may have stored more to send).
async fn write_queued(
    shared: &Shared,
    link: &mut Link,
    qos0_written: &mut Vec<u64>,
) -> Result<Wrote, LinkError> {
    let mut wrote = Wrote::Nothing;
    loop {
        let disconnect = {
            let mut inner = shared.lock();
            inner.feed();
            std::mem::swap(&mut inner.wbuf, &mut link.wbuf);
            std::mem::swap(&mut inner.qos0_queued, qos0_written);
            std::mem::take(&mut inner.disconnect_queued)
        };
        if link.wbuf.is_empty() {
            return Ok(wrote);
        }
        link.flush().await?;
        if disconnect {
            link.wait_closed(Duration::from_secs(1)).await;
            return Ok(Wrote::Disconnect);
        }
        wrote = Wrote::Some;
        if !qos0_written.is_empty() {
            let mut inner = shared.lock();
            inner.tracker.written(qos0_written.len());
            for seq in qos0_written.drain(..) {
                inner.complete(seq);
            }
            refill(shared, &mut inner);
        }
    }
}

/// Handles the frames in the read buffer under one lock, while the inbox has room; the rest
/// stays in the buffer (and the socket unread) until the application catches up.
fn dispatch_buffered(
    shared: &Shared,
    link: &mut Link,
    inbox: &Inbox,
    connection: u64,
    ping: &mut Ping,
) -> Result<(), LinkError> {
    let mut room = inbox.room_left();
    let mut frames = Vec::new();
    while room > 0 {
        let Some(frame) = link.next_frame()? else {
            break;
        };
        if let Frame::Packet(Packet::Publish(p)) = &frame {
            room = room.saturating_sub(p.topic.len() + p.payload.len() + 16);
        }
        frames.push(frame);
    }
    if frames.is_empty() {
        return Ok(());
    }
    let mut inner = shared.lock();
    let mut completed = false;
    let mut subacks = Vec::new();
    let mut arrived = Vec::new();
    let mut oversized = Vec::new();
    for frame in frames {
        match frame {
            Frame::Packet(Packet::PubAck(ack)) => {
                if let Some(Completed::Message(seq)) = inner.tracker.on_puback(ack.pkid) {
                    inner.complete(seq);
                    completed = true;
                }
            }
            Frame::Packet(Packet::Publish(p)) => arrived.push(Received {
                qos: incoming_qos(p.qos, &p.topic)?,
                topic: p.topic,
                payload: p.payload,
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                connection,
                oversized: None,
            }),
            Frame::Oversized(o) => {
                let m = oversized_message(o, connection)?;
                oversized.push((m.topic.clone(), m.oversized.unwrap_or_default()));
                arrived.push(m);
            }
            Frame::Packet(Packet::SubAck(ack)) => subacks.push(ack),
            Frame::Packet(Packet::PingResp) => *ping = Ping::default(),
            Frame::Packet(other) => {
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
    for (topic, size) in oversized {
        tracing::warn!(
            "a message of {size} bytes on `{topic}` is over the packet limit of {} bytes; it was skipped and handed over as oversized (raise --max-packet-size to take such messages)",
            shared.opts.max_packet_size
        );
        shared.emit(SessionEvent::Oversized { topic, size });
    }
    let unwanted: Vec<Received> = arrived
        .into_iter()
        .filter_map(|m| match inbox.offer(m) {
            Offer::Queued => None,
            Offer::Unwanted(m) => Some(m),
        })
        .collect();
    if !unwanted.is_empty() {
        // Nobody reads this session's messages: acknowledge them so the broker does not send
        // them again and again.
        tracing::trace!(
            "{} incoming message(s) dropped: nobody reads them",
            unwanted.len()
        );
        super::ack_received(shared, &unwanted);
    }
    for ack in subacks {
        on_suback(shared, &ack);
    }
    Ok(())
}

fn incoming_qos(qos: QoS, topic: &str) -> Result<Qos, LinkError> {
    match qos {
        QoS::AtMostOnce => Ok(Qos::AtMostOnce),
        QoS::AtLeastOnce => Ok(Qos::AtLeastOnce),
        QoS::ExactlyOnce => Err(LinkError::Protocol(format!(
            "the broker sent a QoS 2 message on `{topic}`, but every subscription asked for QoS 1 at most"
        ))),
    }
}

fn oversized_message(o: OversizedPublish, connection: u64) -> Result<Received, LinkError> {
    let qos = match o.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    Ok(Received {
        qos: incoming_qos(qos, &o.topic)?,
        topic: o.topic,
        payload: o.prefix,
        retain: o.retain,
        dup: o.dup,
        pkid: o.pkid,
        connection,
        oversized: Some(o.size),
    })
}

fn refill(shared: &Shared, inner: &mut super::Inner) {
    inner.feed();
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

fn on_disconnected(shared: &Shared, err: &ConnectError, verdict: &Verdict) {
    let give_up = match &verdict.next {
        Next::GiveUp(why) => Some(why.clone()),
        Next::Retry(_) => None,
    };
    let mut inner = shared.lock();
    let was_connected = inner.connected;
    inner.connected = false;
    // Packets encoded for the lost connection are void: the outbox resends unacknowledged
    // messages (a persistent session with their old packet ids and DUP set), and the broker
    // resends the messages whose PUBACKs were not written.
    inner.discard_unwritten();
    inner.resend_below = inner.handed_up_to;
    let open = inner.tracker.reset(!shared.opts.clean_session);
    for id in open {
        if let Some(req) = inner.sub_requests.remove(&id) {
            inner.orphan_waiters.extend(req.waiters);
        }
    }
    inner.outbox.rewind();
    inner.status.connected = false;
    inner.status.last_error = Some(err.clone());
    if let Some(why) = &give_up {
        inner.status.ended = Some(why.clone());
        for w in std::mem::take(&mut inner.orphan_waiters) {
            let _ = w.tx.send(Err(super::SubscribeError::Ended));
        }
    }
    shared.publish_status(&inner);
    let caller_reports =
        shared.opts.start_mode == super::StartMode::RequireConnection && inner.connection == 0;
    drop(inner);
    // A cause is said once; the same failure again (each retry) only at debug level.
    if give_up.is_some() && caller_reports {
        tracing::info!("{err}");
    } else if verdict.new_cause || was_connected {
        if err.is_permanent() && give_up.is_none() {
            tracing::warn!(
                "{err} (retrying with back-off up to {} s; this needs a change on this side or the broker's)",
                shared.opts.backoff_max.as_secs()
            );
        } else {
            tracing::warn!("{err}");
        }
    } else {
        tracing::debug!("{err}");
    }
    shared.emit(SessionEvent::Disconnected {
        reason: err.to_string(),
    });
    if let Some(why) = give_up {
        // Before the first connection a caller waiting for it gets this error back and reports it.
        if caller_reports {
            tracing::info!("giving up: {why}");
        } else {
            tracing::error!("giving up: {why}");
        }
        shared.emit(SessionEvent::Failed { reason: why });
    }
    shared.room.notify_waiters();
}

pub(super) async fn persist_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let every = match &shared.lock().outbox {
        crate::outbox::Outbox::Disk(s) => Some(s.sync_policy().state_interval()),
        crate::outbox::Outbox::Memory(_) => None,
    };
    let Some(every) = every else {
        // Nothing to save; live as long as the driver (`Session::close` counts on it).
        let _ = stop.wait_for(|s| *s).await;
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tick.tick() => shared.lock().outbox.persist(),
        }
    }
}
