//! Keeps a provisioned device's shadow in sync and prints what happens, until Ctrl-C — the
//! library without the `hdm-telemetry` front end. Provision first (`hdm-telemetry provision`),
//! then: `cargo run -p hdm --example follow_shadow -- certificate_store`.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use hdm::agent::run::{Plan, ShadowPlan, run};
use hdm::agent::{Event, Store, connect};
use hdm::protocol::shadow::device::DeviceConfig;
use hdm::protocol::shadow::gate::initial_state;
use transport::Outbox;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "certificate_store".into());
    let device = Store::new(dir).load()?;
    let opts = connect::session_options(&device, None)?;
    println!(
        "following the shadow of {} at {}",
        device.thing, opts.endpoint
    );
    let plan = Plan {
        shadow: Some(ShadowPlan {
            follow: true,
            sync_timeout: Duration::from_secs(30),
            config: DeviceConfig::default(),
            initial_state: initial_state(),
        }),
        telemetry: None,
    };
    let print = |e: Event| println!("{}", e.text());
    let summary = run(
        opts,
        Outbox::memory(100),
        plan,
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
        &print,
    )
    .await?;
    println!("{summary:?}");
    Ok(())
}
