//! Which outbox message and which subscribe request each MQTT packet id stands for.
//!
//! rumqttc assigns packet ids inside its event loop and tells us only through
//! `Outgoing::Publish(pkid)` / `Outgoing::Subscribe(pkid)` events, emitted in the order requests
//! entered its channel. So we keep a FIFO of what we handed over, pop it when the event names the
//! packet id, and map the PUBACK/SUBACK back. Pure state: no I/O, no clock.

use std::collections::{HashMap, VecDeque};

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
    /// Publishes handed to rumqttc that have no packet id yet, in order.
    unassigned: VecDeque<(u64, Qos)>,
    /// QoS 1 publishes awaiting PUBACK, by packet id.
    awaiting_ack: HashMap<u16, u64>,
    /// Subscribe requests handed to rumqttc without a packet id yet.
    subs_unassigned: VecDeque<u64>,
    /// Subscribe requests awaiting SUBACK.
    subs_awaiting: HashMap<u16, u64>,
}

impl Tracker {
    pub(crate) fn new(window: usize) -> Self {
        Tracker {
            window: window.max(1),
            unassigned: VecDeque::new(),
            awaiting_ack: HashMap::new(),
            subs_unassigned: VecDeque::new(),
            subs_awaiting: HashMap::new(),
        }
    }

    /// Messages handed over and not yet acknowledged.
    pub(crate) fn in_flight(&self) -> usize {
        self.unassigned.len() + self.awaiting_ack.len()
    }

    /// Whether another publish may be handed over.
    pub(crate) fn has_room(&self) -> bool {
        self.in_flight() < self.window
    }

    /// A publish for outbox `seq` was put in rumqttc's channel.
    pub(crate) fn publish_handed_over(&mut self, seq: u64, qos: Qos) {
        self.unassigned.push_back((seq, qos));
    }

    /// A subscribe request was put in rumqttc's channel.
    pub(crate) fn subscribe_handed_over(&mut self, id: u64) {
        self.subs_unassigned.push_back(id);
    }

    /// rumqttc wrote the next publish with packet id `pkid`. A QoS 0 publish is complete now.
    pub(crate) fn on_outgoing_publish(&mut self, pkid: u16) -> Option<Completed> {
        let (seq, qos) = self.unassigned.pop_front()?;
        match qos {
            Qos::AtMostOnce => Some(Completed::Message(seq)),
            Qos::AtLeastOnce => {
                self.awaiting_ack.insert(pkid, seq);
                None
            }
        }
    }

    /// rumqttc wrote the next subscribe with packet id `pkid`.
    pub(crate) fn on_outgoing_subscribe(&mut self, pkid: u16) {
        if let Some(id) = self.subs_unassigned.pop_front() {
            self.subs_awaiting.insert(pkid, id);
        }
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
        self.unassigned.clear();
        self.awaiting_ack.clear();
        let mut subs: Vec<u64> = self.subs_unassigned.drain(..).collect();
        subs.extend(self.subs_awaiting.drain().map(|(_, id)| id));
        subs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puback_maps_back_to_the_right_seq_in_order_of_hand_over() {
        let mut t = Tracker::new(3);
        t.publish_handed_over(10, Qos::AtLeastOnce);
        t.publish_handed_over(11, Qos::AtLeastOnce);
        t.publish_handed_over(12, Qos::AtLeastOnce);
        assert!(!t.has_room());
        assert_eq!(t.on_outgoing_publish(7), None);
        assert_eq!(t.on_outgoing_publish(8), None);
        assert_eq!(t.on_outgoing_publish(9), None);
        assert_eq!(t.on_puback(8), Some(Completed::Message(11)));
        assert_eq!(t.on_puback(7), Some(Completed::Message(10)));
        assert_eq!(
            t.on_puback(8),
            None,
            "a second PUBACK for a packet id is ignored"
        );
        assert!(t.has_room());
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn qos0_completes_when_written() {
        let mut t = Tracker::new(2);
        t.publish_handed_over(1, Qos::AtMostOnce);
        t.publish_handed_over(2, Qos::AtLeastOnce);
        assert_eq!(t.on_outgoing_publish(0), Some(Completed::Message(1)));
        assert_eq!(t.on_outgoing_publish(1), None);
        assert_eq!(t.on_puback(1), Some(Completed::Message(2)));
    }

    #[test]
    fn reset_forgets_in_flight_and_returns_open_subscribes() {
        let mut t = Tracker::new(5);
        t.publish_handed_over(1, Qos::AtLeastOnce);
        t.on_outgoing_publish(1);
        t.subscribe_handed_over(100);
        t.subscribe_handed_over(101);
        t.on_outgoing_subscribe(2);
        let mut open = t.reset();
        open.sort_unstable();
        assert_eq!(open, vec![100, 101]);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(
            t.on_puback(1),
            None,
            "an ack from the old connection completes nothing"
        );
    }

    #[test]
    fn suback_maps_to_request() {
        let mut t = Tracker::new(1);
        t.subscribe_handed_over(5);
        t.on_outgoing_subscribe(3);
        assert_eq!(t.on_suback(3), Some(Completed::Subscribe(5)));
        assert_eq!(t.on_suback(3), None);
    }
}
