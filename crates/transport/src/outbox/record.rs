//! The on-disk record of one spooled message: `len u32 | crc32 u32 | body`, body =
//! `seq u64 | flags u8 | topic_len u16 | topic | payload`, all little-endian. Pure encode and
//! decode; a torn or corrupt tail is reported, never panicked on.

use bytes::Bytes;

use crate::message::{Message, Qos};

/// Bytes before the body: length and checksum.
pub const HEADER_LEN: usize = 8;
const BODY_FIXED: usize = 8 + 1 + 2;
/// Largest body accepted when reading back; anything larger is corruption.
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number, unique and increasing within one spool.
    pub seq: u64,
    /// The message.
    pub message: Message,
}

/// What is wrong with bytes that should hold a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The checksum does not match: the bytes were damaged.
    #[error("checksum mismatch")]
    Checksum,
    /// The length field is impossible.
    #[error("record length {0} is out of range")]
    Length(usize),
    /// The body does not parse.
    #[error("malformed body: {0}")]
    Body(&'static str),
}

/// Appends the encoded record to `out`; returns the bytes written.
pub fn encode(seq: u64, message: &Message, out: &mut Vec<u8>) -> usize {
    let topic = message.topic.as_bytes();
    let body_len = BODY_FIXED + topic.len() + message.payload.len();
    let start = out.len();
    out.reserve(HEADER_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(message.qos.as_u8() | (u8::from(message.retain) << 2));
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&message.payload);
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// The size `encode` would write for this message.
pub fn encoded_len(message: &Message) -> usize {
    HEADER_LEN + BODY_FIXED + message.topic.len() + message.payload.len()
}

/// Reads the body length from a header; `Ok(None)` if fewer than `HEADER_LEN` bytes are given.
pub fn body_len(header: &[u8]) -> Result<Option<usize>, RecordError> {
    let Some(len) = header.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&len) {
        return Err(RecordError::Length(len));
    }
    Ok((header.len() >= HEADER_LEN).then_some(len))
}

/// Decodes the first record of `buf`. `Ok(None)` means the buffer ends inside the record (a torn
/// tail, or simply more bytes to read); otherwise returns the record and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Record, usize)>, RecordError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let Some(len) = body_len(buf)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if crc32fast::hash(body) != crc {
        return Err(RecordError::Checksum);
    }
    Ok(Some((decode_body(body)?, HEADER_LEN + len)))
}

fn decode_body(body: &[u8]) -> Result<Record, RecordError> {
    let (fixed, rest) = body
        .split_at_checked(BODY_FIXED)
        .ok_or(RecordError::Body("shorter than its fixed part"))?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&fixed[..8]);
    let flags = fixed[8];
    let qos = Qos::from_u8(flags & 0b11).ok_or(RecordError::Body("QoS is not 0 or 1"))?;
    if flags & !0b111 != 0 {
        return Err(RecordError::Body("unknown flag bits"));
    }
    let topic_len = u16::from_le_bytes([fixed[9], fixed[10]]) as usize;
    let (topic, payload) = rest
        .split_at_checked(topic_len)
        .ok_or(RecordError::Body("topic runs past the record"))?;
    let topic = std::str::from_utf8(topic).map_err(|_| RecordError::Body("topic is not UTF-8"))?;
    Ok(Record {
        seq: u64::from_le_bytes(seq),
        message: Message {
            topic: topic.to_owned(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain: flags & 0b100 != 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg() -> impl Strategy<Value = Message> {
        (
            "[a-z/]{0,40}",
            proptest::collection::vec(any::<u8>(), 0..600),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(topic, payload, q1, retain)| Message {
                topic,
                payload: payload.into(),
                qos: if q1 {
                    Qos::AtLeastOnce
                } else {
                    Qos::AtMostOnce
                },
                retain,
            })
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(seq in any::<u64>(), m in msg()) {
            let mut buf = Vec::new();
            let n = encode(seq, &m, &mut buf);
            prop_assert_eq!(n, encoded_len(&m));
            let (rec, used) = decode(&buf).unwrap().unwrap();
            prop_assert_eq!(used, n);
            prop_assert_eq!(rec, Record { seq, message: m });
        }

        #[test]
        fn every_truncation_is_incomplete_not_an_error(seq in any::<u64>(), m in msg(), cut in 0usize..1000) {
            let mut buf = Vec::new();
            let n = encode(seq, &m, &mut buf);
            let cut = cut % n;
            prop_assert_eq!(decode(&buf[..cut]), Ok(None));
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_flipped_bit_is_detected(seq in any::<u64>(), m in msg(), pos in any::<usize>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode(seq, &m, &mut buf);
            let pos = HEADER_LEN + pos % (buf.len() - HEADER_LEN);
            buf[pos] ^= 1 << bit;
            let expected = Ok(Some((Record { seq, message: m }, buf.len())));
            prop_assert!(decode(&buf) != expected, "a flipped bit went unnoticed");
        }
    }
}
