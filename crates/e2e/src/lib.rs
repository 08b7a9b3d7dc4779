//! Test-only crate: see `tests/it/main.rs`. It has no library code; the tests need a package to
//! live in that may depend on `sim` and every vendor crate at once.
