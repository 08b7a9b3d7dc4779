//! How an operation ended, in the four classes edgewire's binaries distinguish. Libraries say
//! which class an error or a summary falls in; only the front end (`cli::exit`) turns a class
//! into a process exit code, so the numbers live in one place beside their documentation.

/// The class of an ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Everything asked for was done.
    Ok,
    /// A runtime failure: the broker refused, a message was not confirmed, a database failed.
    Failure,
    /// Bad usage or configuration: a flag, a config file, a certificate file.
    Usage,
    /// The platform answered and rejected what was sent.
    Rejected,
}
