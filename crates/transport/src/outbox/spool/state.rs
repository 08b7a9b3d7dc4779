//! The spool's `state` file: the acknowledgement watermark (`low`), the next seq and the
//! acknowledged seqs above the watermark, with a checksum. Replaced atomically: written to
//! `state.tmp`, synced, renamed over `state`, and the folder synced, so a crash leaves either the
//! old state or the new one, never a torn one. A lost or damaged state only costs duplicates:
//! every record still on disk is sent again.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::io_err;
use crate::outbox::OutboxError;

const STATE_MAGIC: &[u8; 8] = b"EWSPOOL1";

/// What the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// Every seq below this is acknowledged, dropped or lost.
    pub low: u64,
    /// The seq the next record gets.
    pub next: u64,
    /// Acknowledged seqs at or above `low`.
    pub acked: Vec<u64>,
}

pub(crate) fn read(path: &Path) -> Result<State, OutboxError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io_err(path, "read")(e)),
    };
    let parsed = (|| {
        let body = data.strip_prefix(STATE_MAGIC)?;
        let (body, crc) = body.split_at_checked(body.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let low = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let next = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
        let acked = body
            .get(16..)?
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .collect();
        Some(State { low, next, acked })
    })();
    Ok(parsed.unwrap_or_else(|| {
        tracing::warn!(
            "spool state `{}` is damaged; every spooled message will be sent again",
            path.display()
        );
        State::default()
    }))
}

/// Writes the state durably (see the module comment).
pub(crate) fn write(
    dir: &Path,
    low: u64,
    next: u64,
    acked: &BTreeSet<u64>,
) -> Result<(), OutboxError> {
    let mut body = Vec::with_capacity(STATE_MAGIC.len() + 20 + acked.len() * 8);
    body.extend_from_slice(STATE_MAGIC);
    body.extend_from_slice(&low.to_le_bytes());
    body.extend_from_slice(&next.to_le_bytes());
    for seq in acked {
        body.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc32fast::hash(&body[STATE_MAGIC.len()..]);
    body.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("state.tmp");
    let path = dir.join("state");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp, "create"))?;
    f.write_all(&body).map_err(io_err(&tmp, "write"))?;
    f.sync_data().map_err(io_err(&tmp, "sync"))?;
    fs::rename(&tmp, &path).map_err(io_err(&path, "replace"))?;
    sync_dir(dir)
}

/// Makes the folder's entries (a new, renamed or removed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "sync the folder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_state_reads_back_and_damage_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let acked: BTreeSet<u64> = [12, 15].into();
        write(dir.path(), 10, 20, &acked).unwrap();
        let st = read(&dir.path().join("state")).unwrap();
        assert_eq!(
            st,
            State {
                low: 10,
                next: 20,
                acked: vec![12, 15]
            }
        );
        let mut bytes = fs::read(dir.path().join("state")).unwrap();
        bytes[12] ^= 1;
        fs::write(dir.path().join("state"), bytes).unwrap();
        assert_eq!(read(&dir.path().join("state")).unwrap(), State::default());
        assert_eq!(read(&dir.path().join("missing")).unwrap(), State::default());
    }
}
