//! Runs one cloud side as an MQTT client of the broker: subscribes to its filters, hands it what
//! arrives, publishes its answers.

use std::sync::Arc;
use std::time::Duration;

use cloudkit::{CloudSide, Qos};
use tokio::task::JoinHandle;
use transport::session::StartError;
use transport::{Outbox, Session, SessionOptions};

/// A cloud side connected and running.
pub struct CloudRunner {
    pub(crate) cloud: Arc<dyn CloudSide>,
    session: Session,
    task: JoinHandle<()>,
}

/// Why a cloud side could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// Connecting failed.
    #[error("cloud side `{name}` could not connect: {source}")]
    Start {
        /// Cloud side.
        name: &'static str,
        /// Why.
        source: StartError,
    },
    /// Subscribing failed.
    #[error("cloud side `{name}` could not subscribe: {source}")]
    Subscribe {
        /// Cloud side.
        name: &'static str,
        /// Why.
        source: transport::session::SubscribeError,
    },
}

impl CloudRunner {
    /// Connects with `opts` (its client id is replaced by `iot-sim-<name>`) and starts serving.
    pub async fn start(
        cloud: Arc<dyn CloudSide>,
        mut opts: SessionOptions,
    ) -> Result<Self, RunnerError> {
        let name = cloud.name();
        opts.client_id = format!("iot-sim-{name}");
        let (session, mut incoming) = Session::start(opts, Outbox::memory(100_000))
            .await
            .map_err(|source| RunnerError::Start { name, source })?;
        let filters: Vec<(String, Qos)> = cloud
            .filters()
            .into_iter()
            .map(|f| (f, Qos::AtLeastOnce))
            .collect();
        if !filters.is_empty() {
            session
                .subscribe(&filters)
                .await
                .map_err(|source| RunnerError::Subscribe { name, source })?;
        }
        let (c, s) = (cloud.clone(), session.clone());
        let task = tokio::spawn(async move {
            while let Some(msg) = incoming.recv().await {
                let now = time::OffsetDateTime::now_utc();
                for reply in c.on_message(&msg.topic, &msg.payload, now) {
                    if let Err(e) = s.publish(reply).await {
                        tracing::warn!("cloud side `{}` could not answer: {e}", c.name());
                    }
                }
            }
        });
        Ok(CloudRunner {
            cloud,
            session,
            task,
        })
    }

    /// Stops serving and disconnects.
    pub async fn stop(self) {
        self.session.close(Duration::from_secs(1)).await;
        self.task.abort();
    }
}
