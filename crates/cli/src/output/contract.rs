//! The machine contract of every edgewire binary: exit codes and the NDJSON event envelope.
//! `docs/output.md` documents the same table; a test keeps the two in step. Payloads inside
//! events follow [`PayloadJson`] (defined in `transport`, where agents build their events).

use serde::Serialize;
pub use transport::payload::PayloadJson;

/// Exit codes.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: u8 = 0;
    /// A runtime failure: the broker refused, a message was not confirmed, a database failed.
    pub const FAILURE: u8 = 1;
    /// Bad usage or configuration: a flag, a config file, a certificate file.
    pub const USAGE: u8 = 2;
    /// The platform answered and rejected what was sent (vendor-specific rejections).
    pub const REJECTED: u8 = 3;

    /// Name and meaning of each code, as documented.
    pub const TABLE: &[(u8, &str, &str)] = &[
        (OK, "OK", "everything asked for was done"),
        (
            FAILURE,
            "FAILURE",
            "runtime failure (connection, broker refusal, unconfirmed messages, database)",
        ),
        (
            USAGE,
            "USAGE",
            "usage or configuration error (flags, config files, certificate files)",
        ),
        (
            REJECTED,
            "REJECTED",
            "the platform answered and rejected what was sent",
        ),
    ];

    /// The exit code of an outcome a library reports.
    pub fn of(outcome: transport::Outcome) -> u8 {
        match outcome {
            transport::Outcome::Ok => OK,
            transport::Outcome::Failure => FAILURE,
            transport::Outcome::Usage => USAGE,
            transport::Outcome::Rejected => REJECTED,
        }
    }
}

/// One line of NDJSON output: `{"type": "...", "data": {...}}`.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    /// Event type, e.g. `published`, `message`, `summary`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Event data.
    pub data: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_documented_code() {
        use transport::Outcome;
        for (outcome, name) in [
            (Outcome::Ok, "OK"),
            (Outcome::Failure, "FAILURE"),
            (Outcome::Usage, "USAGE"),
            (Outcome::Rejected, "REJECTED"),
        ] {
            let code = exit::of(outcome);
            assert!(
                exit::TABLE.iter().any(|(c, n, _)| *c == code && *n == name),
                "{outcome:?} maps to {code}, which the table does not call {name}"
            );
        }
    }

    #[test]
    fn docs_table_matches_the_constants() {
        let doc = include_str!("../../../../docs/output.md");
        for (code, name, _) in exit::TABLE {
            let row = format!("| {code} | `{name}` |");
            assert!(
                doc.contains(&row),
                "docs/output.md lacks the row starting `{row}`"
            );
        }
    }
}
