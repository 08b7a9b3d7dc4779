//! The IoTConnect device protocol as data: no sockets, no files, no clock. Time comes in as an
//! argument: [`Mono`] (a monotonic instant, for `df` and edge windows) and a UTC
//! `time::OffsetDateTime` (for the timestamps written into messages).
//!
//! # Layout
//! - Independent of the wire version: [`attributes`] (the template's `att` list), [`validate`]
//!   (good/faulty split), [`edge`] (tumbling-window aggregation), [`rules`] (edge rule
//!   conditions), [`df`] (the data-frequency gate), [`input`] (the SDK's `SendData` records),
//!   [`sas`] (SharedAccessSignature tokens), [`dps`] (Azure DPS registration with TPM
//!   attestation, auth type 4).
//! - Message protocol 1.0 on the wire: [`v1`] (discovery and `sync`, the D2C envelope, acks,
//!   C2D commands, topics, twin).
//! - Message protocol 2.1 on the wire: [`v2`] (discovery by `cpId`/`env` or `sid`, identity,
//!   per-kind topics, flat C2D with `ct`, 2.1 acks).
//! - [`device`]: the device state machine that ties them together and returns [`action`]s; it
//!   speaks 1.0 or 2.1 depending on how it was made.

pub mod action;
pub mod attributes;
pub mod device;
pub mod df;
pub mod dps;
pub mod edge;
pub mod input;
pub mod rules;
pub mod sas;
pub mod v1;
pub mod v2;
pub mod validate;

use time::OffsetDateTime;
use time::macros::format_description;

/// A monotonic instant: the time elapsed since an origin the caller picks (the agent uses its
/// start). Only differences matter, so tests can use any values.
pub type Mono = std::time::Duration;

/// Formats a UTC timestamp the way IoTConnect documents it: `2021-01-24T10:06:17.857Z`
/// (milliseconds; the Python SDK always writes `.000`).
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let t = time::macros::datetime!(2021-01-24 10:06:17.857 UTC);
        assert_eq!(timestamp(t), "2021-01-24T10:06:17.857Z");
        let t = time::macros::datetime!(2021-01-24 12:06:17.000 +02:00);
        assert_eq!(timestamp(t), "2021-01-24T10:06:17.000Z");
    }
}
