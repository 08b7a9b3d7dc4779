//! iot-sim (placeholder while being written).
fn main() {}
