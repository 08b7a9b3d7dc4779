//! Packet ids: which outbox message and which subscribe request each one stands for, and which
//! ids are free. Ids are handed out in a cycle over 1..=65535, skipping those still awaiting an
//! answer, so an id is never reused while its PUBACK or SUBACK can still arrive (the collision
//! that livelocks rumqttc, #1014, cannot happen). Pure state: no I/O, no clock.

use std::collections::HashMap;

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
    last_pkid: u16,
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
            if !self.awaiting_ack.contains_key(&id) && !self.subs_awaiting.contains_key(&id) {
                return id;
            }
        }
    }

    /// Outbox message `seq` is being sent: its packet id (0 at QoS 0, which completes once
    /// written, see [`Tracker::written`]).
    pub(crate) fn publish(&mut self, seq: u64, qos: Qos) -> u16 {
        match qos {
            Qos::AtMostOnce => {
                self.unwritten += 1;
                0
            }
            Qos::AtLeastOnce => {
                let id = self.next_pkid();
                self.awaiting_ack.insert(id, seq);
                id
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

    /// The connection is gone: nothing is in flight any more. Returns the subscribe requests
    /// that were not answered.
    pub(crate) fn reset(&mut self) -> Vec<u64> {
        self.unwritten = 0;
        self.awaiting_ack.clear();
        self.subs_awaiting.drain().map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puback_maps_back_to_the_right_seq() {
        let mut t = Tracker::new(3);
        let a = t.publish(10, Qos::AtLeastOnce);
        let b = t.publish(11, Qos::AtLeastOnce);
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
        assert_eq!(t.publish(1, Qos::AtMostOnce), 0);
        let id = t.publish(2, Qos::AtLeastOnce);
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
        let held = t.publish(1, Qos::AtLeastOnce);
        assert_eq!(held, 65_534);
        t.last_pkid = 65_533;
        assert_eq!(t.publish(2, Qos::AtLeastOnce), 65_535, "65534 is in use");
        assert_eq!(t.subscribe(7), 1, "wraps to 1, never 0");
    }

    #[test]
    fn reset_forgets_in_flight_and_returns_open_subscribes() {
        let mut t = Tracker::new(5);
        let id = t.publish(1, Qos::AtLeastOnce);
        t.subscribe(100);
        t.subscribe(101);
        let mut open = t.reset();
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
    fn suback_maps_to_request() {
        let mut t = Tracker::new(1);
        let id = t.subscribe(5);
        assert_eq!(t.on_suback(id), Some(Completed::Subscribe(5)));
        assert_eq!(t.on_suback(id), None);
    }
}
