//! Every vendor iot-sim knows: its cloud side and its demo check. Each vendor crate adds one
//! entry here when it lands.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cloudkit::{CloudSide, DemoEnv, DemoRow};

use crate::echo::EchoCloud;

/// A vendor's demo check: runs its agent against the local cloud and says what happened.
pub type DemoFn = fn(DemoEnv) -> Pin<Box<dyn Future<Output = Vec<DemoRow>> + Send>>;

/// One vendor (or a tool, like the sink, that has a demo check but no platform side).
pub struct Vendor {
    /// Name in the demo table when there is no platform side.
    pub name: &'static str,
    /// Its platform side.
    pub cloud: Option<Arc<dyn CloudSide>>,
    /// Its demo check (the transport checks are built into the demo).
    pub demo: Option<DemoFn>,
}

/// A fresh instance of every vendor.
pub fn vendors() -> Vec<Vendor> {
    vec![
        Vendor {
            name: "transport",
            cloud: Some(Arc::new(EchoCloud::default())),
            demo: None,
        },
        Vendor {
            name: "gooee",
            cloud: Some(Arc::new(gooee::cloud::GooeeCloud::default())),
            demo: Some(|env| Box::pin(gooee::demo::run(env))),
        },
        Vendor {
            name: "hdm",
            cloud: Some(Arc::new(hdm::cloud::HdmCloud::default())),
            demo: Some(|env| Box::pin(hdm::demo::run(env))),
        },
        Vendor {
            name: "mindconnect",
            cloud: Some(Arc::new(mindconnect::cloud::MindConnectCloud::default())),
            demo: Some(|env| Box::pin(mindconnect::demo::run(env))),
        },
        Vendor {
            name: "iotconnect",
            cloud: Some(Arc::new(iotconnect::cloud::IotConnectCloud::default())),
            demo: Some(|env| Box::pin(iotconnect::demo::run(env))),
        },
        Vendor {
            name: "mqtt-sink",
            cloud: None,
            demo: Some(|env| Box::pin(sink::demo::run(env))),
        },
    ]
}

/// A fresh instance of every cloud side.
pub fn clouds() -> Vec<Arc<dyn CloudSide>> {
    vendors().into_iter().filter_map(|v| v.cloud).collect()
}
