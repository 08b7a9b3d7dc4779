//! Unit tests of both outbox kinds: order, acknowledgement, rewind, recovery, caps.

use std::io::Write;

use super::*;
use crate::message::{Message, Qos};

fn m(i: u64) -> Message {
    Message::new(format!("t/{i}"), format!("payload-{i}"))
}

fn drain(o: &mut Outbox) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some((seq, msg)) = o.next_unsent() {
        assert_eq!(msg.topic, format!("t/{}", payload_index(&msg)));
        out.push(seq);
    }
    out
}

fn payload_index(msg: &Message) -> u64 {
    std::str::from_utf8(&msg.payload)
        .unwrap()
        .trim_start_matches("payload-")
        .parse()
        .unwrap()
}

fn disk(dir: &std::path::Path) -> Outbox {
    Outbox::disk(SpoolConfig::new(dir)).unwrap()
}

#[test]
fn memory_queue_hands_out_in_order_and_resends_unacked_after_rewind() {
    let mut o = Outbox::memory(10);
    for i in 0..5 {
        o.push(m(i)).unwrap();
    }
    assert_eq!(drain(&mut o), vec![1, 2, 3, 4, 5]);
    o.ack(2);
    o.ack(1);
    o.ack(4);
    assert_eq!(o.unacked(), 2);
    o.rewind();
    assert_eq!(drain(&mut o), vec![3, 5]);
}

#[test]
fn memory_queue_reports_full() {
    let mut o = Outbox::memory(2);
    o.push(m(0)).unwrap();
    o.push(m(1)).unwrap();
    assert!(!o.has_room());
    o.ack(1);
    assert!(o.has_room());
}

#[test]
fn disk_spool_replays_unacked_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut o = disk(dir.path());
        for i in 0..100 {
            o.push(m(i)).unwrap();
        }
        let sent = drain(&mut o);
        assert_eq!(sent.len(), 100);
        for seq in (1..=40).chain([50, 60]) {
            o.ack(seq);
        }
        o.sync();
    }
    let mut o = disk(dir.path());
    assert_eq!(o.unacked(), 58);
    let mut got = Vec::new();
    while let Some((_, msg)) = o.next_unsent() {
        got.push(payload_index(&msg));
    }
    let want: Vec<u64> = (40..100).filter(|i| *i != 49 && *i != 59).collect();
    assert_eq!(got, want);
}

#[test]
fn disk_spool_without_persist_loses_nothing_only_resends() {
    // A kill -9 skips persist(): the records are on disk (written before push returned), the
    // acks since the last persist are not. Everything unacked must come back; acked may too.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut o = disk(dir.path());
        for i in 0..10 {
            o.push(m(i)).unwrap();
        }
        drain(&mut o);
        o.ack(1);
        o.sync();
        o.ack(2);
        std::mem::forget(o); // no Drop, no persist: like SIGKILL
    }
    // The lock dies with the file handle in a real kill; forget() leaks it, so break it here.
    let mut o = loop {
        match Outbox::disk(SpoolConfig::new(dir.path())) {
            Ok(o) => break o,
            Err(OutboxError::Locked { .. }) => {
                std::fs::remove_file(dir.path().join("LOCK")).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    };
    let mut got = Vec::new();
    while let Some((_, msg)) = o.next_unsent() {
        got.push(payload_index(&msg));
    }
    assert_eq!(
        got,
        (1..10).collect::<Vec<_>>(),
        "seq 2 resent (ack not saved), seq 1 not (saved)"
    );
}

#[test]
fn second_process_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = disk(dir.path());
    let err = Outbox::disk(SpoolConfig::new(dir.path())).unwrap_err();
    assert!(matches!(err, OutboxError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("--spool"));
}

#[test]
fn full_spool_drops_oldest_segment_and_counts_lost_messages() {
    let dir = tempfile::tempdir().unwrap();
    // 4 files of 4096 bytes; each record is 8 + 11 + 5 + 1000 = 1024 bytes => 4 per file.
    let cfg = SpoolConfig {
        dir: dir.path().to_owned(),
        max_bytes: 4 * 4096,
        max_files: 4,
        ..SpoolConfig::new(dir.path())
    };
    let mut o = Outbox::disk(cfg).unwrap();
    let big =
        |i: u64| Message::new(format!("t/{i:03}"), vec![b'x'; 1000]).with_qos(Qos::AtLeastOnce);
    let mut dropped_total = 0;
    for i in 0..16 {
        let (_, d) = o.push(big(i)).unwrap();
        assert!(d.is_none(), "nothing dropped while it fits (i={i})");
    }
    o.ack(1); // one of the oldest was delivered
    for i in 16..20 {
        if let (_, Some(d)) = o.push(big(i)).unwrap() {
            dropped_total += d.count;
            assert_eq!(d.below_seq, 5);
        }
    }
    assert_eq!(
        dropped_total, 3,
        "records 2, 3 and 4 lost; 1 was acknowledged"
    );
    let Outbox::Disk(s) = &o else { unreachable!() };
    assert_eq!(s.files(), 4);
    assert!(s.bytes() <= 4 * 4096);
    let mut first = None;
    while let Some((seq, _)) = o.next_unsent() {
        first.get_or_insert(seq);
    }
    assert_eq!(first, Some(5));
    assert_eq!(o.unacked(), 16);
}

#[test]
fn torn_tail_is_truncated_and_earlier_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut o = disk(dir.path());
        for i in 0..3 {
            o.push(m(i)).unwrap();
        }
    }
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap(); // half a header of a fourth record
    drop(f);
    let mut o = disk(dir.path());
    let mut got = Vec::new();
    while let Some((_, msg)) = o.next_unsent() {
        got.push(payload_index(&msg));
    }
    assert_eq!(got, vec![0, 1, 2]);
    // And appending after recovery continues the sequence cleanly.
    let (seq, _) = o.push(m(3)).unwrap();
    assert_eq!(seq, 4);
}

#[test]
fn acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        dir: dir.path().to_owned(),
        max_bytes: 16 * 4096,
        max_files: 16,
        ..SpoolConfig::new(dir.path())
    };
    let mut o = Outbox::disk(cfg).unwrap();
    for i in 0..40 {
        o.push(Message::new(format!("t/{i:03}"), vec![b'x'; 1000]))
            .unwrap();
    }
    let Outbox::Disk(s) = &o else { unreachable!() };
    assert_eq!(s.files(), 10);
    for seq in 1..=40 {
        o.ack(seq);
    }
    o.sync();
    let Outbox::Disk(s) = &o else { unreachable!() };
    assert_eq!(s.files(), 1, "only the active segment stays");
    let on_disk = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(
        on_disk, 1,
        "the finished segment files are gone from the folder"
    );
    assert_eq!(o.unacked(), 0);
}

#[test]
fn large_message_is_refused_with_the_cap_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        dir: dir.path().to_owned(),
        max_bytes: 10_000,
        max_files: 2,
        ..SpoolConfig::new(dir.path())
    };
    let mut o = Outbox::disk(cfg).unwrap();
    let err = o.push(Message::new("t", vec![0u8; 20_000])).unwrap_err();
    assert!(err.to_string().contains("--spool-max-mb"), "{err}");
}
