//! Packet ids: which outbox message and which subscribe request each one stands for, and which
//! ids are free. Ids are handed out in a cycle over 1..=65535, skipping those still awaiting an
//! answer, so an id is never reused while its PUBACK or SUBACK can still arrive (the collision
//! that livelocks rumqttc, #1014, cannot happen). On a persistent session, the QoS 1 messages
//! that were awaiting PUBACK when the connection was lost keep their ids, and go out again with
//! the same id and DUP set (MQTT 3.1.1 section 4.4). Pure state: no I/O, no clock.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::message::Qos;

/// What an acknowledgement completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completed {
    /// The outbox message with this seq is delivered.
    Message(u64),
    /// The subscribe request with this id is answered.
    Subscribe(u64),
}

/// In-flight bookkeeping for one connection.
#[derive(Debug)]
pub(crate) struct Tracker {
    window: usize,
    /// QoS 0 publishes encoded but not yet written.
    unwritten: usize,
    /// QoS 1 publishes awaiting PUBACK, by packet id.
    awaiting_ack: HashMap<u16, u64>,
    /// Subscribe requests awaiting SUBACK, by packet id.
    subs_awaiting: HashMap<u16, u64>,
    /// Persistent session: messages sent on a lost connection and not acknowledged, by seq, with
    /// the packet id they keep for their resend.
    resend: BTreeMap<u64, u16>,
    /// The ids in `resend`, not to be handed to anything else.
    reserved: HashSet<u16>,
    last_pkid: u16,
}

/// The packet id a publish goes out with, and whether it is a resend (DUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assigned {
    pub pkid: u16,
    pub dup: bool,
}

/// Largest window: leaves packet ids free for subscribe requests.
const MAX_WINDOW: usize = 65_000;

impl Tracker {
    pub(crate) fn new(window: usize) -> Self {
        Tracker {
            window: window.clamp(1, MAX_WINDOW),
            unwritten: 0,
            awaiting_ack: HashMap::new(),
            subs_awaiting: HashMap::new(),
            resend: BTreeMap::new(),
            reserved: HashSet::new(),
            last_pkid: 0,
        }
    }

    /// Messages handed over and not yet acknowledged (or, at QoS 0, written).
    pub(crate) fn in_flight(&self) -> usize {
        self.unwritten + self.awaiting_ack.len()
    }

    /// Whether another publish may be handed over.
    pub(crate) fn has_room(&self) -> bool {
        self.in_flight() < self.window
    }

    fn next_pkid(&mut self) -> u16 {
        loop {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            let id = self.last_pkid;
            if !self.awaiting_ack.contains_key(&id)
                && !self.subs_awaiting.contains_key(&id)
                && !self.reserved.contains(&id)
            {
                return id;
            }
        }
    }

    /// Outbox message `seq` is being sent: its packet id (0 at QoS 0, which completes once
    /// written, see [`Tracker::written`]), the one it had before if it is a resend on a
    /// persistent session.
    pub(crate) fn publish(&mut self, seq: u64, qos: Qos) -> Assigned {
        // The outbox hands messages out in seq order: reserved seqs below this one were
        // acknowledged or dropped meanwhile, and their ids are free again.
        while let Some((&old, _)) = self.resend.first_key_value().filter(|(s, _)| **s < seq) {
            if let Some(id) = self.resend.remove(&old) {
                self.reserved.remove(&id);
            }
        }
        match qos {
            Qos::AtMostOnce => {
                self.unwritten += 1;
                Assigned {
                    pkid: 0,
                    dup: false,
                }
            }
            Qos::AtLeastOnce => {
                let (pkid, dup) = match self.resend.remove(&seq) {
                    Some(id) => {
                        self.reserved.remove(&id);
                        (id, true)
                    }
                    None => (self.next_pkid(), false),
                };
                self.awaiting_ack.insert(pkid, seq);
                Assigned { pkid, dup }
            }
        }
    }

    /// `n` QoS 0 publishes were written.
    pub(crate) fn written(&mut self, n: usize) {
        self.unwritten = self.unwritten.saturating_sub(n);
    }

    /// Subscribe request `id` is being sent: its packet id.
    pub(crate) fn subscribe(&mut self, id: u64) -> u16 {
        let pkid = self.next_pkid();
        self.subs_awaiting.insert(pkid, id);
        pkid
    }

    /// PUBACK for `pkid`.
    pub(crate) fn on_puback(&mut self, pkid: u16) -> Option<Completed> {
        self.awaiting_ack.remove(&pkid).map(Completed::Message)
    }

    /// SUBACK for `pkid`.
    pub(crate) fn on_suback(&mut self, pkid: u16) -> Option<Completed> {
        self.subs_awaiting.remove(&pkid).map(Completed::Subscribe)
    }

    /// The connection is gone: nothing is in flight any more. With `keep_ids` (a persistent
    /// session) the unacknowledged publishes keep their ids for the resend. Returns the
    /// subscribe requests that were not answered.
    pub(crate) fn reset(&mut self, keep_ids: bool) -> Vec<u64> {
        self.unwritten = 0;
        for (id, seq) in self.awaiting_ack.drain() {
            if keep_ids {
                self.resend.insert(seq, id);
                self.reserved.insert(id);
            }
        }
        self.subs_awaiting.drain().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puback_maps_back_to_the_right_seq() {
        let mut t = Tracker::new(3);
        let a = t.publish(10, Qos::AtLeastOnce).pkid;
        let b = t.publish(11, Qos::AtLeastOnce).pkid;
        let _ = t.publish(12, Qos::AtLeastOnce);
        assert!(!t.has_room());
        assert_eq!(t.on_puback(b), Some(Completed::Message(11)));
        assert_eq!(t.on_puback(a), Some(Completed::Message(10)));
        assert_eq!(
            t.on_puback(b),
            None,
            "a second PUBACK for a packet id is ignored"
        );
        assert!(t.has_room());
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn qos0_has_no_packet_id_and_counts_until_written() {
        let mut t = Tracker::new(2);
        assert_eq!(t.publish(1, Qos::AtMostOnce).pkid, 0);
        let id = t.publish(2, Qos::AtLeastOnce).pkid;
        assert_ne!(id, 0);
        assert!(!t.has_room());
        t.written(1);
        assert!(t.has_room());
        assert_eq!(t.on_puback(id), Some(Completed::Message(2)));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn ids_skip_those_in_use_and_wrap_past_65535() {
        let mut t = Tracker::new(10);
        t.last_pkid = 65_533;
        let held = t.publish(1, Qos::AtLeastOnce).pkid;
        assert_eq!(held, 65_534);
        t.last_pkid = 65_533;
        assert_eq!(
            t.publish(2, Qos::AtLeastOnce).pkid,
            65_535,
            "65534 is in use"
        );
        assert_eq!(t.subscribe(7), 1, "wraps to 1, never 0");
    }

    #[test]
    fn reset_forgets_in_flight_and_returns_open_subscribes() {
        let mut t = Tracker::new(5);
        let id = t.publish(1, Qos::AtLeastOnce).pkid;
        t.subscribe(100);
        t.subscribe(101);
        let mut open = t.reset(false);
        open.sort_unstable();
        assert_eq!(open, vec![100, 101]);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(
            t.on_puback(id),
            None,
            "an ack from the old connection completes nothing"
        );
    }

    #[test]
    fn a_persistent_session_resends_with_the_same_ids_and_dup() {
        let mut t = Tracker::new(10);
        let one = t.publish(1, Qos::AtLeastOnce);
        let two = t.publish(2, Qos::AtLeastOnce);
        let three = t.publish(3, Qos::AtLeastOnce);
        assert!(!one.dup && !two.dup && !three.dup);
        assert_eq!(t.on_puback(two.pkid), Some(Completed::Message(2)));
        t.reset(true);
        assert_eq!(t.in_flight(), 0);
        // New ids never take a reserved one.
        let fresh: Vec<u16> = (0..5).map(|i| t.subscribe(i)).collect();
        assert!(!fresh.contains(&one.pkid) && !fresh.contains(&three.pkid));
        assert_eq!(
            t.publish(1, Qos::AtLeastOnce),
            Assigned {
                pkid: one.pkid,
                dup: true
            }
        );
        assert_eq!(
            t.publish(3, Qos::AtLeastOnce),
            Assigned {
                pkid: three.pkid,
                dup: true
            }
        );
        let four = t.publish(4, Qos::AtLeastOnce);
        assert!(!four.dup && four.pkid != one.pkid && four.pkid != three.pkid);
    }

    #[test]
    fn reserved_ids_of_messages_gone_meanwhile_are_freed() {
        let mut t = Tracker::new(3);
        let a = t.publish(1, Qos::AtLeastOnce);
        let b = t.publish(2, Qos::AtLeastOnce);
        t.reset(true);
        // Seq 1 was dropped from a full spool while offline: the outbox goes on with 2.
        assert_eq!(
            t.publish(2, Qos::AtLeastOnce),
            Assigned {
                pkid: b.pkid,
                dup: true
            }
        );
        assert!(t.reserved.is_empty() && t.resend.is_empty());
        t.last_pkid = a.pkid - 1;
        assert_eq!(
            t.publish(9, Qos::AtLeastOnce).pkid,
            a.pkid,
            "the id is free again"
        );
    }

    #[test]
    fn a_clean_session_forgets_the_ids() {
        let mut t = Tracker::new(3);
        t.publish(1, Qos::AtLeastOnce);
        t.reset(false);
        assert!(!t.publish(1, Qos::AtLeastOnce).dup);
    }

    #[test]
    fn suback_maps_to_request() {
        let mut t = Tracker::new(1);
        let id = t.subscribe(5);
        assert_eq!(t.on_suback(id), Some(Completed::Subscribe(5)));
        assert_eq!(t.on_suback(id), None);
    }
}
