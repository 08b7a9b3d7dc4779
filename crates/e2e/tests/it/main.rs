//! End-to-end tests across crates: each vendor's agent against iot-sim's local cloud (the `sim`
//! engine: embedded broker, HTTPS endpoints, the vendor's cloud side) and against a real
//! mosquitto. They live here, not in the vendor crates, because `sim` depends on every vendor
//! crate: a vendor crate dev-depending on `sim` would be a cycle that compiles the vendor twice.
//! One module per vendor, one test binary.

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::many_single_char_names
)]

mod gooee;
mod hdm;
mod iotconnect;
mod mindconnect;

use std::path::Path;

use cloudkit::DemoRow;

/// The bytes of a vendor's test vector, from `crates/<vendor>/tests/vectors/<name>` (the
/// vectors belong to the protocol, so they stay with the vendor crate).
pub fn vector(vendor: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(vendor)
        .join("tests/vectors")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Asserts that a demo reported exactly `checks`, in order, and that each passed. The names
/// are the contract: a check the demo stops running (or renames) fails here, where a row count
/// or the demo's own `ok` would not notice.
#[track_caller]
pub fn assert_demo_rows(rows: &[DemoRow], checks: &[&str]) {
    for r in rows {
        eprintln!(
            "{:<70} {:>4} {:>4} {}",
            r.check,
            r.expected,
            r.got,
            if r.ok {
                "ok"
            } else {
                r.note.as_deref().unwrap_or("FAILED")
            }
        );
    }
    let got: Vec<&str> = rows.iter().map(|r| r.check.as_str()).collect();
    assert_eq!(got, checks, "the demo's rows changed");
    let failed: Vec<&DemoRow> = rows
        .iter()
        .filter(|r| !r.ok || r.expected != r.got)
        .collect();
    assert!(failed.is_empty(), "failed rows: {failed:#?}");
}
