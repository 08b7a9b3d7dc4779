# edgewire recipes. `just --list` shows them.

# Development certificates in agent_cert/ (root CA, broker, one client per agent)
certs:
    cargo run --release -p iot-sim -- certs --dir agent_cert

# The local cloud, until Ctrl-C
sim:
    cargo run --release -p iot-sim -- up

# Every agent against the local cloud, with a summary
demo:
    cargo run --release -p iot-sim -- demo

# Formatting, lints and the whole test suite (what CI runs)
test:
    bash .ci/run

# Publish throughput beside mosquitto_pub and paho-mqtt
bench:
    bench/publish.sh --runs 3
