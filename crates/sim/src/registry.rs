//! Every cloud side iot-sim runs. Each vendor crate adds its own here when it lands.

use std::sync::Arc;

use cloudkit::CloudSide;

use crate::echo::EchoCloud;

/// A fresh instance of every cloud side.
pub fn clouds() -> Vec<Arc<dyn CloudSide>> {
    vec![Arc::new(EchoCloud::default())]
}
