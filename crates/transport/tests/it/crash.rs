//! The spool's durability contract under the worst a device meets: the agent killed (SIGKILL)
//! at random instants while it appends as fast as it can, a flipped byte and a segment cut short
//! on disk, and damage that appears while the spool is open. Every record that was accepted is
//! delivered; only damaged records are lost, and they are counted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{BrokerOpts, Subscriber};
use transport::outbox::{Fate, record};
use transport::{Message, Outbox, Session, SpoolConfig, SpoolSync, StartMode};

use crate::{blocking, broker, opts};

const CHILD_DIR: &str = "EDGEWIRE_TEST_SPOOL_CHILD_DIR";
const CHILD_SYNC: &str = "EDGEWIRE_TEST_SPOOL_CHILD_SYNC";

fn payload(seq: u64) -> String {
    format!("m-{seq:0>180}")
}

fn big_spool(dir: &Path, sync: SpoolSync) -> SpoolConfig {
    SpoolConfig {
        max_bytes: 1 << 30,
        max_files: 1024,
        sync,
        ..SpoolConfig::new(dir)
    }
}

/// Not a test by itself: the appender that the SIGKILL tests run as a child process (this
/// same test binary, with `CHILD_DIR` set). Without that variable it returns at once.
#[test]
fn spool_appender_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let sync = match std::env::var(CHILD_SYNC).as_deref() {
        Ok("always") => SpoolSync::Always,
        _ => SpoolSync::default(),
    };
    let mut outbox = Outbox::disk(big_spool(Path::new(&dir), sync)).unwrap();
    let Outbox::Disk(spool) = &outbox else {
        unreachable!()
    };
    let accepted = spool.accepted();
    let mut reported = 0;
    let mut out = std::io::stdout().lock();
    loop {
        if outbox.has_room() {
            let seq = outbox.next_seq();
            outbox.push(Message::new("crash/n", payload(seq))).unwrap();
        } else {
            std::thread::yield_now();
        }
        let now = *accepted.borrow();
        if now > reported {
            reported = now;
            writeln!(out, "accepted_below {now}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// Runs the appender on `dir`, kills it with SIGKILL a random moment after it reported its
/// first accepted records, and returns the highest "accepted below" it reported.
fn append_and_kill(dir: &Path, sync: &str) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::spool_appender_child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_SYNC, sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut max = 0u64;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("accepted_below ") {
                max = max.max(n.parse().unwrap());
                let _ = tx.send(());
            }
        }
        max
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the appender reported accepted records");
    // The random instant is what is tested: the kill lands anywhere in the append loop.
    std::thread::sleep(Duration::from_micros(fastrand::u64(0..40_000)));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Every record in the spool, by seq, after reopening it.
fn drain(dir: &Path) -> (BTreeMap<u64, String>, u64) {
    let mut o = Outbox::disk(big_spool(dir, SpoolSync::default())).unwrap();
    let mut got = BTreeMap::new();
    while let Some((seq, m)) = o.next_unsent() {
        got.insert(seq, String::from_utf8(m.payload.to_vec()).unwrap());
    }
    (got, o.lost())
}

fn kill_many_times(sync: &str, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = 0;
    for _ in 0..runs {
        let reported = append_and_kill(dir.path(), sync);
        assert!(
            reported >= accepted,
            "seqs never go back ({reported} < {accepted})"
        );
        accepted = reported;
    }
    let (got, lost) = drain(dir.path());
    let missing: Vec<u64> = (1..accepted)
        .filter(|seq| got.get(seq) != Some(&payload(*seq)))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "accepted records missing or wrong after {runs} kills: {missing:?} (of {})",
        accepted - 1
    );
    assert_eq!(lost, 0, "a kill damages nothing that was accepted");
}

#[test]
fn every_accepted_record_survives_fifty_sigkills_during_heavy_appends() {
    kill_many_times("interval", 50);
}

#[test]
fn under_spool_sync_always_every_accepted_record_survives_sigkills_too() {
    kill_many_times("always", 10);
}

/// Writes `n` records into a spool of small segments and returns the segment files, oldest
/// first, with the seqs each holds.
fn small_segments(dir: &Path, n: u64) -> Vec<(PathBuf, Vec<u64>)> {
    let cfg = SpoolConfig {
        max_bytes: 64 * 1024,
        max_files: 32,
        ..SpoolConfig::new(dir)
    };
    let mut o = Outbox::disk(cfg).unwrap();
    for i in 0..n {
        o.push(Message::new("dmg/n", format!("{i:0>100}"))).unwrap();
    }
    o.sync();
    drop(o);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            let mut seqs = Vec::new();
            let mut at = 0;
            while let Ok(Some((rec, used))) = record::decode(&data[at..]) {
                seqs.push(rec.seq);
                at += used;
            }
            (p, seqs)
        })
        .collect()
}

/// The byte offset of the record holding `seq` in a segment file, and its length.
fn record_at(path: &Path, seq: u64) -> (usize, usize) {
    let data = std::fs::read(path).unwrap();
    let mut at = 0;
    while let Ok(Some((rec, used))) = record::decode(&data[at..]) {
        if rec.seq == seq {
            return (at, used);
        }
        at += used;
    }
    panic!("no record {seq} in {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_and_a_cut_segment_cost_only_the_damaged_records() {
    let dir = tempfile::tempdir().unwrap();
    let segments = blocking(|| small_segments(dir.path(), 300));
    assert!(segments.len() >= 8, "{} segments", segments.len());
    // A flipped byte in the middle record of the third segment.
    let (third, seqs) = &segments[2];
    let flipped = seqs[seqs.len() / 2];
    let (at, len) = record_at(third, flipped);
    let mut data = std::fs::read(third).unwrap();
    data[at + len / 2] ^= 0x20;
    std::fs::write(third, data).unwrap();
    // The sixth segment cut in the middle of a record (a disk or copy gone wrong).
    let (sixth, seqs) = &segments[5];
    let cut_in = seqs[seqs.len() / 2];
    let (at, len) = record_at(sixth, cut_in);
    std::fs::OpenOptions::new()
        .write(true)
        .open(sixth)
        .unwrap()
        .set_len((at + len / 2) as u64)
        .unwrap();
    let gone: BTreeSet<u64> = std::iter::once(flipped)
        .chain(seqs.iter().copied().filter(|s| *s >= cut_in))
        .collect();

    // Through a real session to a real broker: everything else arrives, the damage is counted.
    let b = broker(BrokerOpts::new().max_queued(10_000));
    let sub = blocking(|| Subscriber::start(&b, "dmg/#", 1, Some("dmg-sub")));
    let mut o = opts(&b.url_plain());
    o.start_mode = StartMode::Background;
    let spool = Outbox::disk(SpoolConfig {
        max_bytes: 64 * 1024,
        max_files: 32,
        ..SpoolConfig::new(dir.path())
    })
    .unwrap();
    let (s, _) = Session::start(o, spool).await.unwrap();
    assert_eq!(
        s.flush(Duration::from_secs(20)).await,
        0,
        "nothing left stuck"
    );
    assert_eq!(
        s.status().lost,
        gone.len() as u64,
        "each damaged record counted"
    );
    s.close(Duration::from_secs(1)).await;
    let want: Vec<u64> = (0..300u64).filter(|i| !gone.contains(&(i + 1))).collect();
    let got = blocking(|| sub.wait_for_count(want.len(), Duration::from_secs(20)));
    let nums: Vec<u64> = got.iter().map(|(_, p)| p.parse().unwrap()).collect();
    assert_eq!(nums, want, "every undamaged record, in order, once");
}

#[test]
fn damage_found_while_sending_skips_the_record_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let segments = small_segments(dir.path(), 50);
    let mut o = Outbox::disk(SpoolConfig {
        max_bytes: 64 * 1024,
        max_files: 32,
        ..SpoolConfig::new(dir.path())
    })
    .unwrap();
    // The spool is open (its check on opening is past); now a record goes bad on disk.
    let (path, seqs) = &segments[1];
    let victim = seqs[1];
    let (at, len) = record_at(path, victim);
    let mut data = std::fs::read(path).unwrap();
    data[at + len - 3] ^= 0xff;
    std::fs::write(path, data).unwrap();
    let mut got = Vec::new();
    while let Some((seq, _)) = o.next_unsent() {
        got.push(seq);
    }
    let want: Vec<u64> = (1..=50).filter(|s| *s != victim).collect();
    assert_eq!(got, want, "everything but the damaged record, no stall");
    assert_eq!(o.lost(), 1);
    assert_eq!(o.fate(victim), Fate::Lost);
    assert_eq!(o.unacked(), 49);
}
