//! The async runtime every edgewire binary runs its `main` on: two worker threads, because the
//! machines these agents run on are small.

use crate::output::exit;

/// Runs a binary's async `main` and turns its exit code into an [`std::process::ExitCode`].
pub fn block_on(main: impl std::future::Future<Output = u8>) -> std::process::ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => std::process::ExitCode::from(rt.block_on(main)),
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            std::process::ExitCode::from(exit::FAILURE)
        }
    }
}
