//! Timestamps as MindConnect payloads carry them: RFC 3339 in UTC with a literal `Z`. We emit
//! milliseconds like the documentation (`2020-08-01T00:15:10.100Z`); we accept 0 to 9 fractional
//! digits (the sample sends microseconds). Time is always an argument.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `now` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A timestamp that is not RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timestamp `{value}` is not RFC 3339 in UTC (expected e.g. 2020-08-01T00:15:10.100Z)")]
pub struct TimestampError {
    /// What was given.
    pub value: String,
}

/// Parses an RFC 3339 timestamp that ends in `Z`.
pub fn parse(value: &str) -> Result<OffsetDateTime, TimestampError> {
    let err = || TimestampError {
        value: value.chars().take(64).collect(),
    };
    if !value.ends_with('Z') {
        return Err(err());
    }
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn formats_milliseconds_like_the_docs() {
        assert_eq!(
            format(datetime!(2020-08-01 00:15:10.1 UTC)),
            "2020-08-01T00:15:10.100Z"
        );
        assert_eq!(
            format(datetime!(2020-08-01 02:15:10.123456 +02:00)),
            "2020-08-01T00:15:10.123Z"
        );
    }

    #[test]
    fn accepts_the_samples_microseconds_and_the_docs_milliseconds() {
        for s in [
            "2023-07-05T10:11:12.123456Z",
            "2020-08-01T00:15:10.100Z",
            "2022-12-01T20:05:10Z",
        ] {
            assert!(parse(s).is_ok(), "{s}");
        }
        for s in [
            "2020-08-01T00:15:10+01:00",
            "2020-08-01",
            "<curr_date_time>",
            "",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_roundtrips_to_the_millisecond(secs in 0i64..4_000_000_000, ms in 0u16..1000) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap() + time::Duration::milliseconds(ms.into());
            prop_assert_eq!(parse(&format(t)).unwrap(), t);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
