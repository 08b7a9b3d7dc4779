//! IoTConnect against iot-sim's local cloud: the cloud side from documented bytes, the demo
//! check, and the agent end to end against the embedded broker and against mosquitto. (Vectors
//! and hostile-input tests need no sim and stay in `crates/iotconnect/tests`.)

mod bootstrap;
mod cloud_raw;
mod common;
mod demo;
mod mosquitto;
mod sim_e2e;
mod v21;
