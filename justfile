# edgewire recipes. `just --list` shows them; each is safe to run twice.
# Binaries come from target/$PROFILE (default debug, built on demand); `PROFILE=release just ...`
# uses release builds.

set shell := ["bash", "-euo", "pipefail", "-c"]

profile := env_var_or_default("PROFILE", "debug")
bin := "target/" + profile
cargo_profile := if profile == "release" { "--release" } else { "" }
binaries := "gooee-pub hdm-telemetry iot-sim iotc-send mc-agent mc-model mqtt-sink"
# The port base of the example configs (configs/): plain 18880, ws 18881, mtls 18882,
# tls_password 18883, wss 18884, https 18885.
port_base := "18880"

# Build every binary (target/$PROFILE)
build:
    cargo build --locked {{cargo_profile}} $(printf -- '-p %s ' {{binaries}})

# Install the binaries, bash/zsh/fish completions and man pages under PREFIX (e.g. ~/.local)
install PREFIX: build
    install -d "{{PREFIX}}/bin" "{{PREFIX}}/share/bash-completion/completions" \
        "{{PREFIX}}/share/zsh/site-functions" "{{PREFIX}}/share/fish/vendor_completions.d" \
        "{{PREFIX}}/share/man/man1"
    for b in {{binaries}}; do \
        install -m 0755 "{{bin}}/$b" "{{PREFIX}}/bin/$b"; \
        "{{bin}}/$b" completions bash > "{{PREFIX}}/share/bash-completion/completions/$b"; \
        "{{bin}}/$b" completions zsh > "{{PREFIX}}/share/zsh/site-functions/_$b"; \
        "{{bin}}/$b" completions fish > "{{PREFIX}}/share/fish/vendor_completions.d/$b.fish"; \
        "{{bin}}/$b" man --dir "{{PREFIX}}/share/man/man1" > /dev/null; \
    done
    @echo "installed {{binaries}} into {{PREFIX}}/bin (completions and man pages under {{PREFIX}}/share)"

# Check an installed tree: every binary runs, its bash completion loads, its man page renders
check-install PREFIX:
    for b in {{binaries}}; do \
        "{{PREFIX}}/bin/$b" --version > /dev/null; \
        bash -c "source '{{PREFIX}}/share/bash-completion/completions/$b' && complete -p $b" > /dev/null; \
        if command -v man > /dev/null; then MANWIDTH=100 man -l -P cat "{{PREFIX}}/share/man/man1/$b.1" > /dev/null; \
        else groff -man -Tutf8 "{{PREFIX}}/share/man/man1/$b.1" > /dev/null; fi; \
    done
    @echo "every binary in {{PREFIX}} runs, completes in bash and has a man page"

# Development certificates in agent_cert/ (root CA, broker, one client per agent)
certs: build
    {{bin}}/iot-sim certs --dir agent_cert

# The local cloud on the example configs' ports, until Ctrl-C
sim: build
    {{bin}}/iot-sim up --port-base {{port_base}}

# The local cloud in the background (`just sim-down` stops it); prints its endpoints
sim-up: build
    {{bin}}/iot-sim down > /dev/null
    {{bin}}/iot-sim up --port-base {{port_base}} --detach

# Stop the background local cloud (nothing running is fine)
sim-down:
    {{bin}}/iot-sim down

# Every agent against the local cloud, with a summary
demo: build
    {{bin}}/iot-sim demo

# Formatting, lints and the whole test suite (what CI runs)
test:
    bash .ci/run

# Publish throughput beside mosquitto_pub and paho-mqtt (release build)
bench:
    bench/publish.sh --runs 3

# The PNG plots in docs/img (in-flight window, sink over a run, fleet); needs matplotlib
plots:
    bench/plots.sh docs/img

# HDM: fetch the configuration and provision the device once (again: refreshes CA and endpoint only)
provision-hdm ENV_FILE="configs/hdm/env.sim" STORE="certificate_store" *FLAGS: build
    {{bin}}/hdm-telemetry provision --env-file "{{ENV_FILE}}" --store "{{STORE}}" {{FLAGS}}

# Insights Hub: publish the asset model, then instantiate it once (instance.conf remembers)
provision-mindconnect CONFIG="configs/mindconnect/mqtt-config.json" SECTION="IOTSIM" *FLAGS: build
    {{bin}}/mc-model publish -c "{{CONFIG}}" --section "{{SECTION}}" --yes {{FLAGS}}
    {{bin}}/mc-model instantiate -c "{{CONFIG}}" --section "{{SECTION}}" --yes {{FLAGS}}

# IoTConnect: discovery and sync of the device (and its children); prints their attributes
provision-iotconnect CONFIG="configs/iotconnect/iotconnect.json" *FLAGS: build
    {{bin}}/iotc-send -c "{{CONFIG}}" {{FLAGS}} attributes

# Gooee: one meta publish, waiting for the platform's verdict (exit 3 when rejected); GOOEE_TOKEN
check-gooee DEVICE="smoke-device" *FLAGS: build
    {{bin}}/gooee-pub meta --device "{{DEVICE}}" dim=50 --watch-rejected {{FLAGS}}

# iot-sim on known ports, every agent once against it, `iot-sim status` asserted, then down
smoke: build
    #!/usr/bin/env bash
    set -euo pipefail
    bin={{bin}}
    work=$(mktemp -d "${TMPDIR:-/tmp}/edgewire-smoke.XXXXXX")
    trap '"$bin/iot-sim" down > /dev/null || true; rm -rf -- "$work"' EXIT
    "$bin/iot-sim" down > /dev/null
    "$bin/iot-sim" up --port-base {{port_base}} --detach
    eval "$("$bin/iot-sim" env)"
    step() { printf '\n--- smoke: %s\n' "$*"; }
    # The loopback plain port takes iot-sim's service account only (docs/security.md).
    service=(-u "$EDGEWIRE_SIM_SERVICE_USERNAME" --password-file "$EDGEWIRE_SIM_SERVICE_PASSWORD_FILE")
    step "iot-sim pub (plain listener)"
    "$bin/iot-sim" pub -b "$EDGEWIRE_SIM_PLAIN" "${service[@]}" -t demo/plain/reading -C 3 --numbered
    step "mindconnect (configs/mindconnect, section IOTSIM)"
    just profile={{profile}} provision-mindconnect configs/mindconnect/mqtt-config.json IOTSIM \
        --instance-conf "$work/instance.conf"
    "$bin/mc-agent" run -c configs/mindconnect/mqtt-config.json --section IOTSIM --count 1 \
        --instance-conf "$work/instance.conf"
    step "iotconnect (configs/iotconnect)"
    just profile={{profile}} provision-iotconnect
    "$bin/iotc-send" -c configs/iotconnect/iotconnect.json data \
        --data '[{"uniqueId":"iotc-gateway-01","data":{"temperature":21.5} }]'
    step "hdm (configs/hdm/env.sim)"
    just profile={{profile}} provision-hdm configs/hdm/env.sim "$work/store" --cafile "$EDGEWIRE_SIM_CA"
    "$bin/hdm-telemetry" send --env-file configs/hdm/env.sim --store "$work/store" --demo -C 2
    step "gooee (tls_password listener, the local cloud's development token)"
    GOOEE_TOKEN=edgewire-gooee-dev-token-not-a-secret just profile={{profile}} check-gooee smoke-device \
        -b "$EDGEWIRE_SIM_TLS_PASSWORD" --cafile "$EDGEWIRE_SIM_CA"
    step "mqtt-sink (esp32 readings into SQLite)"
    "$bin/mqtt-sink" -b "$EDGEWIRE_SIM_PLAIN" "${service[@]}" --preset esp32 --db "sqlite://$work/readings.db" \
        --create-table -i smoke-sink -C 5 > "$work/sink.out" 2>&1 &
    sink=$!
    for _ in $(seq 300); do grep -q storing "$work/sink.out" && break; sleep 0.1; done
    "$bin/mqtt-sink" simulate -b "$EDGEWIRE_SIM_PLAIN" "${service[@]}" --count 5 --rate 50
    wait "$sink"
    cat "$work/sink.out"
    step "iot-sim status"
    "$bin/iot-sim" --output json status > "$work/status.json"
    python3 - "$work/status.json" <<'EOF'
    import json, sys
    st = json.load(open(sys.argv[1]))["data"]["clouds"]
    need = {
        "transport": "received_plain",
        "mindconnect": "timeseries_messages",
        "iotconnect": "telemetry_messages",
        "hdm": "telemetry_accepted",
        "gooee": "meta_accepted",
    }
    missing = [f"{c}.{k}" for c, k in need.items() if not st.get(c, {}).get("counters", {}).get(k)]
    if missing:
        sys.exit(f"smoke: iot-sim status lacks {', '.join(missing)}: {json.dumps(st)}")
    print("smoke: iot-sim status shows every vendor's traffic")
    EOF
    "$bin/iot-sim" down
