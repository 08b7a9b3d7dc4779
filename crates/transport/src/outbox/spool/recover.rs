//! Opening a spool folder left by an earlier run: every segment is checked record by record
//! (length, checksum, seq). A record cut short at the end of a segment is what a crash during
//! an append leaves (that record was never accepted) and is cut off. A damaged record in the
//! middle (a flipped bit, a bad sector) is skipped: the scan finds the next record that checks
//! out and carries on, the good records behind the damage are kept, the segment is rewritten
//! without the damaged bytes, and the seqs that are missing are counted as lost.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Segment, io_err, state};
use crate::outbox::OutboxError;
use crate::outbox::record::{self, HEADER_LEN};

/// What an earlier run left.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub segments: VecDeque<Segment>,
    /// Seqs of records that were damaged or are missing between segments.
    pub lost: Vec<Range<u64>>,
}

pub(super) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.log"))
}

/// Reads every segment in `dir`, repairing damage as the module comment says.
pub(crate) fn scan(dir: &Path) -> Result<Recovered, OutboxError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let entry = entry.map_err(io_err(dir, "list"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if Path::new(name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tmp"))
        {
            // A replacement that a crash interrupted; the original is still in place.
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let first = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first_seq) = first {
            found.push((first_seq, entry.path()));
        }
    }
    found.sort_unstable();
    let mut out = Recovered::default();
    for (first_seq, path) in found {
        let seg = check_segment(first_seq, &path, &mut out.lost)?;
        if let Some(prev) = out.segments.back()
            && prev.end_seq < first_seq
        {
            tracing::warn!(
                "spool segment `{}` does not follow the one before it; records {}..{first_seq} are missing",
                path.display(),
                prev.end_seq
            );
            out.lost.push(prev.end_seq..first_seq);
        }
        out.segments.push_back(seg);
    }
    Ok(out)
}

/// Where the good records of one segment are.
#[derive(Debug, Default, PartialEq, Eq)]
struct Layout {
    /// Byte ranges of good records, in order.
    good: Vec<Range<usize>>,
    /// Seq after the last good record.
    end_seq: u64,
    /// Seqs skipped because their records are damaged.
    lost: Vec<Range<u64>>,
    /// Damaged bytes were found before the end (the segment must be rewritten).
    damaged: bool,
    /// The segment ends with a record cut short (or unreadable bytes).
    torn_tail: bool,
}

fn layout(data: &[u8], first_seq: u64) -> Layout {
    let mut l = Layout {
        end_seq: first_seq,
        ..Layout::default()
    };
    let mut offset = 0usize;
    while offset < data.len() {
        match record::decode(&data[offset..]) {
            Ok(Some((rec, used))) if rec.seq >= l.end_seq => {
                if rec.seq > l.end_seq {
                    l.lost.push(l.end_seq..rec.seq);
                }
                l.good.push(offset..offset + used);
                offset += used;
                l.end_seq = rec.seq + 1;
            }
            // Damaged (a length that runs past the end is damage too unless nothing good
            // follows), or a record out of order: look for the next one that checks out.
            Ok(None | Some(_)) | Err(_) => {
                if let Some(next) = resync(data, offset + 1, l.end_seq) {
                    l.damaged = true;
                    offset = next;
                } else {
                    l.torn_tail = true;
                    break;
                }
            }
        }
    }
    l
}

/// The first offset at or after `from` where a whole record with a seq of at least `min_seq`
/// starts. Cheap tests (a possible length, a seq in range) come before the checksum, so a
/// damaged region costs little more than one pass.
pub(super) fn resync(data: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let max_seq = min_seq.saturating_add(data.len() as u64);
    (from..data.len().saturating_sub(HEADER_LEN)).find(|&at| {
        let rest = &data[at..];
        let Ok(Some(len)) = record::body_len(rest) else {
            return false;
        };
        if HEADER_LEN + len > rest.len() {
            return false;
        }
        let seq = rest
            .get(HEADER_LEN..HEADER_LEN + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        (min_seq..max_seq).contains(&seq)
            && matches!(record::decode(rest), Ok(Some((r, _))) if r.seq == seq)
    })
}

fn check_segment(
    first_seq: u64,
    path: &Path,
    lost: &mut Vec<Range<u64>>,
) -> Result<Segment, OutboxError> {
    let data = fs::read(path).map_err(io_err(path, "read"))?;
    let l = layout(&data, first_seq);
    let kept: usize = l.good.iter().map(ExactSizeIterator::len).sum();
    let records = l.good.len();
    if l.damaged || !l.lost.is_empty() {
        let missing: u64 = l.lost.iter().map(|r| r.end - r.start).sum();
        tracing::warn!(
            "spool segment `{}` is damaged: {missing} record(s) lost, keeping the {records} good ones (around the damage)",
            path.display()
        );
        rewrite(path, &data, &l.good)?;
    } else if l.torn_tail {
        tracing::warn!(
            "spool segment `{}`: the last record is cut short (the writer was interrupted); keeping the {records} records before byte {kept}",
            path.display()
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path, "open"))?;
        f.set_len(kept as u64).map_err(io_err(path, "truncate"))?;
        f.sync_all().map_err(io_err(path, "sync"))?;
    }
    lost.extend(l.lost);
    Ok(Segment {
        first_seq,
        end_seq: l.end_seq,
        bytes: kept as u64,
        path: path.to_owned(),
    })
}

/// Replaces the segment with its good records only, atomically.
fn rewrite(path: &Path, data: &[u8], good: &[Range<usize>]) -> Result<(), OutboxError> {
    let tmp = path.with_extension("log.tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp, "create"))?;
    for r in good {
        f.write_all(&data[r.clone()])
            .map_err(io_err(&tmp, "write"))?;
    }
    f.sync_all().map_err(io_err(&tmp, "sync"))?;
    fs::rename(&tmp, path).map_err(io_err(path, "replace"))?;
    match path.parent() {
        Some(dir) => state::sync_dir(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use proptest::prelude::*;

    fn records(first: u64, n: u64) -> (Vec<u8>, Vec<Range<usize>>) {
        let mut buf = Vec::new();
        let mut at = Vec::new();
        for seq in first..first + n {
            let start = buf.len();
            record::encode(
                seq,
                &Message::new(format!("t/{seq}"), vec![b'p'; 40]),
                &mut buf,
            );
            at.push(start..buf.len());
        }
        (buf, at)
    }

    #[test]
    fn a_clean_segment_is_all_good() {
        let (data, at) = records(5, 10);
        let l = layout(&data, 5);
        assert_eq!(l.good, at);
        assert_eq!(l.end_seq, 15);
        assert!(!l.damaged && !l.torn_tail && l.lost.is_empty());
    }

    #[test]
    fn a_flipped_byte_loses_one_record_and_keeps_the_rest() {
        let (mut data, at) = records(1, 10);
        data[at[3].start + HEADER_LEN + 12] ^= 0x40;
        let l = layout(&data, 1);
        assert_eq!(l.lost, vec![4..5]);
        assert_eq!(l.good.len(), 9);
        assert_eq!(l.end_seq, 11);
        assert!(l.damaged);
    }

    #[test]
    fn a_damaged_length_field_is_skipped_too() {
        let (mut data, at) = records(1, 10);
        data[at[6].start..at[6].start + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let l = layout(&data, 1);
        assert_eq!(l.lost, vec![7..8]);
        assert_eq!(l.end_seq, 11);
    }

    #[test]
    fn a_cut_mid_record_is_a_torn_tail() {
        let (data, at) = records(1, 4);
        let l = layout(&data[..at[3].start + 10], 1);
        assert_eq!(l.good, at[..3].to_vec());
        assert!(l.torn_tail && !l.damaged && l.lost.is_empty());
        assert_eq!(l.end_seq, 4);
    }

    proptest! {
        #[test]
        fn any_single_damage_keeps_every_record_it_did_not_touch(pos in any::<usize>(), byte in any::<u8>()) {
            let (mut data, at) = records(1, 20);
            let pos = pos % data.len();
            prop_assume!(data[pos] != byte);
            data[pos] = byte;
            let hit = at.iter().position(|r| r.contains(&pos)).unwrap();
            let l = layout(&data, 1);
            let kept: Vec<u64> = l.good.iter().map(|r| {
                let (rec, _) = record::decode(&data[r.clone()]).unwrap().unwrap();
                rec.seq
            }).collect();
            for (i, _) in at.iter().enumerate() {
                if i != hit {
                    prop_assert!(kept.contains(&(i as u64 + 1)), "record {} lost by damage in record {}", i + 1, hit + 1);
                }
            }
        }

        #[test]
        fn hostile_segments_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = layout(&bytes, 1);
        }
    }
}
