//! `--partition-by day|month`: PostgreSQL range partitions over a timestamp column taken from
//! the payload, one partition per UTC day or month, named `<table>_pYYYYMMDD` /
//! `<table>_pYYYYMM` and created the first time a row needs one. Pure: the ranges, names and
//! DDL text; the writer runs it.
//!
//! Why a payload column and not the receive time: a redelivered message must land on the row
//! it already has, and PostgreSQL's unique keys on a partitioned table must include the
//! partition column, so that column has to be the same on every delivery.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month, OffsetDateTime, UtcOffset};

use crate::ident::Ident;

/// How wide one partition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Every {
    /// One UTC day.
    Day,
    /// One UTC month.
    Month,
}

impl FromStr for Every {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Every::Day),
            "month" => Ok(Every::Month),
            _ => Err(format!("`{s}` is not a partition width: use day or month")),
        }
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Every::Day => "day",
            Every::Month => "month",
        })
    }
}

/// Range partitioning of the target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    /// Width.
    pub every: Every,
    /// The mapped timestamp column.
    pub column: Ident,
}

/// One partition: its first instant (inclusive) and the next partition's (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Range {
    /// Inclusive start (UTC midnight).
    pub from: Date,
    /// Exclusive end.
    pub to: Date,
}

impl Partitioning {
    /// The partition holding `t`, `None` when the calendar ends (year 9999).
    pub fn range_of(&self, t: OffsetDateTime) -> Option<Range> {
        let d = t.to_offset(UtcOffset::UTC).date();
        match self.every {
            Every::Day => Some(Range {
                from: d,
                to: d.next_day()?,
            }),
            Every::Month => {
                let from = Date::from_calendar_date(d.year(), d.month(), 1).ok()?;
                let (y, m) = match d.month() {
                    Month::December => (d.year() + 1, Month::January),
                    m => (d.year(), m.next()),
                };
                Some(Range {
                    from,
                    to: Date::from_calendar_date(y, m, 1).ok()?,
                })
            }
        }
    }

    /// `<table>_pYYYYMMDD` (day) or `<table>_pYYYYMM` (month), the table name cut so the
    /// whole stays within 63 characters.
    pub fn partition_name(&self, table: &Ident, r: Range) -> Ident {
        let suffix = match self.every {
            Every::Day => format!(
                "_p{:04}{:02}{:02}",
                r.from.year(),
                u8::from(r.from.month()),
                r.from.day()
            ),
            Every::Month => format!("_p{:04}{:02}", r.from.year(), u8::from(r.from.month())),
        };
        let keep = 63usize.saturating_sub(suffix.len());
        let base: String = table.as_str().chars().take(keep).collect();
        Ident::new(&format!("{base}{suffix}"), "table").unwrap_or_else(|_| table.clone())
    }

    /// `CREATE TABLE IF NOT EXISTS <partition> PARTITION OF <table> FOR VALUES FROM .. TO ..`
    /// (bounds are UTC instants, literal dates from the calendar, never user text).
    pub fn create_partition(&self, table: &Ident, r: Range) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
            self.partition_name(table, r).quoted(),
            table.quoted(),
            r.from,
            r.to
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn p(every: Every) -> Partitioning {
        Partitioning {
            every,
            column: Ident::new("dh", "column").unwrap(),
        }
    }

    #[test]
    fn ranges_are_utc_days_and_months() {
        let t = datetime!(2026-12-31 23:30 -03:00); // 2027-01-01 02:30 UTC
        let day = p(Every::Day).range_of(t).unwrap();
        assert_eq!(
            (day.from.to_string(), day.to.to_string()),
            ("2027-01-01".into(), "2027-01-02".into())
        );
        let month = p(Every::Month)
            .range_of(datetime!(2026-12-15 0:00 UTC))
            .unwrap();
        assert_eq!(
            (month.from.to_string(), month.to.to_string()),
            ("2026-12-01".into(), "2027-01-01".into())
        );
    }

    #[test]
    fn names_and_ddl() {
        let table = Ident::new("readings", "table").unwrap();
        let r = p(Every::Day)
            .range_of(datetime!(2026-11-24 10:00 UTC))
            .unwrap();
        assert_eq!(
            p(Every::Day).partition_name(&table, r).as_str(),
            "readings_p20261124"
        );
        assert_eq!(
            p(Every::Day).create_partition(&table, r),
            "CREATE TABLE IF NOT EXISTS \"readings_p20261124\" PARTITION OF \"readings\" FOR VALUES FROM ('2026-11-24 00:00:00+00') TO ('2026-11-25 00:00:00+00')"
        );
        let long = Ident::new(&"t".repeat(63), "table").unwrap();
        let r = p(Every::Month)
            .range_of(datetime!(2026-11-24 10:00 UTC))
            .unwrap();
        let name = p(Every::Month).partition_name(&long, r);
        assert!(name.as_str().len() <= 63 && name.as_str().ends_with("_p202611"));
        assert!("week".parse::<Every>().is_err());
    }
}
