//! run (first and second), the one-shots, and exit codes 0/1/2 from the built binary.

use std::time::Duration;

use cloudkit::CloudSide;
use mindconnect::agent::model::{SendOptions, prepare_model, send};
use mindconnect::agent::silent;
use mindconnect::cloud::MindConnectCloud;
use mindconnect::config::{ConfigFile, Overrides, Settings};
use mindconnect::protocol::template::Kind;
use mindconnect::templates::TemplateDir;
use serde_json::json;
use transport::{Outbox, Qos, Session};

use super::{CUSTOM_DOC, Env, mc_agent, mc_agent_with_stdin, spawn};

async fn publish_model(env: &Env) {
    let cfg = env.agent().join("configs/mqtt-config.json");
    let settings =
        Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &Overrides::default()).unwrap();
    let p = prepare_model(
        &settings,
        &TemplateDir::find(None, &cfg)
            .unwrap()
            .load(Kind::Model)
            .unwrap(),
    )
    .unwrap();
    send(
        &settings,
        &p,
        &SendOptions {
            timeout: Duration::from_secs(15),
            qos: Qos::AtLeastOnce,
            instance_conf: None,
        },
        &silent(),
    )
    .await
    .unwrap();
}

async fn deliver(env: &Env, payload: serde_json::Value) {
    let plain = env
        .sim
        .listeners()
        .iter()
        .find(|l| l.name == "plain")
        .unwrap();
    let mut o = plain.session_options().unwrap();
    o.client_id = "operator".into();
    let (s, _i) = Session::start(o, Outbox::memory(4)).await.unwrap();
    let (msg, _) = MindConnectCloud::command(
        "edgewire",
        "edgewire_mqttagent",
        "job-cli",
        payload.as_object().cloned().unwrap(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    s.publish(msg).await.unwrap().confirmed().await.unwrap();
    s.close(Duration::from_secs(1)).await;
}

/// `run` that sends one timeseries, waits for one command and ends (events, files and the
/// datalake off).
const ONE_COMMAND_RUN: [&str; 13] = [
    "run",
    "--count",
    "1",
    "--wait-commands",
    "1",
    "--ts-interval",
    "20ms",
    "--event-interval",
    "off",
    "--file-interval",
    "off",
    "--datalake-interval",
    "off",
];

/// Once the running agent subscribed, sends it one command of `command_type` and waits for the
/// agent to answer it and end with exit code 0.
async fn answer_one_command(env: &Env, bg: &mut testkit::cli::Running, command_type: &str) {
    tokio::task::block_in_place(|| {
        bg.wait_for_stdout(
            &["\"type\":\"subscribed\"", "cmd_v3/c"],
            Duration::from_secs(20),
        );
    });
    deliver(env, json!({ "commandType": command_type })).await;
    assert_eq!(
        tokio::task::block_in_place(|| bg.wait(Duration::from_secs(60))),
        Some(0),
        "{:?}",
        bg.stdout.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_twice_with_a_command_hook() {
    let env = Env::start().await;
    publish_model(&env).await;
    let cwd = env.agent();
    let mut bg = spawn(
        &cwd,
        &[
            "run",
            "--count",
            "1",
            "--wait-commands",
            "1",
            "--ts-interval",
            "20ms",
            "--event-interval",
            "20ms",
            "--file-interval",
            "20ms",
            "--datalake-interval",
            "20ms",
            "--on-command",
            "firmware_update=echo '{\"progress\":\"flashed\"}'",
            "--output",
            "json",
        ],
    );
    answer_one_command(&env, &mut bg, "firmware_update").await;
    let lines = bg.stdout.lock().unwrap().clone();
    testkit::schema::validate("mindconnect", lines.join("\n").as_bytes());
    assert!(lines.iter().any(|l| l.contains("\"instance_created\"")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"command_status\"") && l.contains("flashed")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("\"uploaded\"")));
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(
        last["data"],
        json!({"timeseries":1,"events":1,"files":1,"datalake":1,"commands":1,"unconfirmed":0})
    );

    let out = mc_agent(
        &cwd,
        &[
            "run",
            "--count",
            "2",
            "--ts-interval",
            "10ms",
            "--event-interval",
            "off",
            "--file-interval",
            "off",
            "--datalake-interval",
            "off",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("instance.conf says CREATED; not instantiating again"),
        "{text}"
    );
    assert!(
        text.contains("sent 2 timeseries, 0 events, 0 files"),
        "{text}"
    );
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("instantiations_received"),
            r.get("timeseries_values"),
            r.get("commands_executed")
        ),
        (1, 6, 1)
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shots_answer_or_fail() {
    let env = Env::start().await;
    let cwd = env.agent();
    let out = mc_agent(
        &cwd,
        &[
            "timeseries",
            "--value",
            "temperature=30.1",
            "--value",
            "humidity=51",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let ev = testkit::cli::events_of("mindconnect", &out.stdout);
    assert!(ev.iter().any(|(k, d)| {
        k == "warning"
            && d["message"]
                .as_str()
                .unwrap()
                .contains("does not say CREATED")
    }));
    assert!(ev.iter().any(
        |(k, d)| k == "published" && d["topic"] == "tc/edgewire/edgewire_mqttagent/o/mc_v3/ts"
    ));
    assert_eq!(mc_agent(&cwd, &["event"]).status.code(), Some(0));
    std::fs::write(cwd.join("notes.txt"), "hello platform").unwrap();
    assert_eq!(
        mc_agent(&cwd, &["upload", "notes.txt"]).status.code(),
        Some(0)
    );
    let out = mc_agent(&cwd, &["upload", "notes.txt", "--datalake"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("uploaded 14 bytes to the datalake as /")
    );
    let out = mc_agent(&cwd, &["token"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "the token alone: {stdout}");
    assert_eq!(stdout.trim().split('.').count(), 3, "a JWT: {stdout}");
    let r = env.cloud.report();
    assert_eq!(
        (
            r.get("events"),
            r.get("files"),
            r.get("datalake_objects"),
            r.get("tokens_issued")
        ),
        (1, 1, 1, 2)
    );
    assert_eq!(
        env.cloud.agent("edgewire_mqttagent").unwrap().files[0].content,
        b"hello platform"
    );
    env.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_exit_codes() {
    let env = Env::start().await;
    let cwd = env.agent();
    let out = mc_agent(&cwd, &["event", "-i", "edgewire_other"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("after `edgewire_` it has `other` where the certificate says `mqttagent`")
    );
    let out = mc_agent(&cwd, &["token", "--key", "agent_cert/nope.key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("certificates missing: DEVICE_KET_PATH `agent_cert/nope.key` does not exist")
    );
    std::fs::write(cwd.join("configs/broken.json"), "{\"AWS\": [").unwrap();
    let out = mc_agent(
        &cwd,
        &["token", "-c", "configs/broken.json", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"type\":\"error\""));
    // Instantiation refused by the platform (no model published): the run ends with exit 3.
    let out = mc_agent(&cwd, &["run", "--count", "1", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model `JetPumpModel` does not exist"));
    assert_eq!(
        env.cloud.report().get("timeseries_messages"),
        0,
        "no timeseries before the instance exists"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("timeseries are held back"),
        "the refusal is reported while the run goes on"
    );
    assert_eq!(
        (
            env.cloud.report().get("events"),
            env.cloud.report().get("files")
        ),
        (1, 1),
        "events and files need no instance: they went"
    );
    assert_ne!(
        std::fs::read_to_string(cwd.join("instance.conf")).unwrap_or_default(),
        "CREATED",
        "the next start asks again"
    );
    // A user whose asset already exists says so; the run skips the instantiation.
    let out = mc_agent(
        &cwd,
        &[
            "run",
            "--count",
            "1",
            "--timeout",
            "10",
            "--assume-instantiated",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(cwd.join("instance.conf")).unwrap(),
        "CREATED"
    );
    assert_eq!(env.cloud.report().get("timeseries_messages"), 1);
    env.sim.stop().await;
}

/// A hook starts from a minimal environment: the agent's secrets stay out, `--hook-env`
/// names and the agent's `MC_*` context come in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_hook_gets_the_minimal_environment_only() {
    let env = Env::start().await;
    publish_model(&env).await;
    let cwd = env.agent();
    let dump = env.dir.path().join("hook-env.txt");
    let hook = format!("reboot=env > '{}'; echo rebooted", dump.display());
    let mut cmd = super::command(
        &cwd,
        &[
            &ONE_COMMAND_RUN[..],
            &[
                "--on-command",
                &hook,
                "--hook-env",
                "EDGEWIRE_TEST_SITE",
                "--output",
                "json",
            ],
        ]
        .concat(),
    );
    cmd.env("GOOEE_TOKEN", "secret-gooee-token")
        .env("HDM_API_KEY", "secret-hdm-key")
        .env("EDGEWIRE_TEST_BROKER_PASSWORD", "secret-password")
        .env("EDGEWIRE_TEST_SITE", "plant-7");
    let mut bg = testkit::cli::Running::spawn(&mut cmd);
    answer_one_command(&env, &mut bg, "reboot").await;
    let seen = std::fs::read_to_string(&dump).unwrap();
    for secret in [
        "GOOEE_TOKEN",
        "HDM_API_KEY",
        "EDGEWIRE_TEST_BROKER_PASSWORD",
        "secret-",
    ] {
        assert!(!seen.contains(secret), "the hook saw {secret}:\n{seen}");
    }
    for wanted in [
        "EDGEWIRE_TEST_SITE=plant-7",
        "MC_COMMAND_TYPE=reboot",
        "MC_JOB_ID=job-cli",
        "PATH=",
    ] {
        assert!(
            seen.lines().any(|l| l.starts_with(wanted)),
            "no {wanted}:\n{seen}"
        );
    }
}

/// Events from real input: one from flags, then JSON lines on stdin; the platform side keeps
/// each as given (type, severity, description, details, the line's own timestamp), and a bad
/// line stops the run naming its line after the ones before it were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_flags_and_lines_arrive_as_given() {
    let env = Env::start().await;
    let cwd = env.agent();
    let out = mc_agent(
        &cwd,
        &[
            "event",
            "--type",
            "SensorInterruptEvent",
            "--severity",
            "warning",
            "--description",
            "pump 3 vibrates",
            "--details",
            r#"{"utilizedPercentage": 87, "measurements": 4.5}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::write(
        cwd.join("events.jsonl"),
        concat!(
            r#"{"type": "AgentBaseEvent", "severity": 40, "description": "shift start", "timestamp": "2026-12-01T06:00:00.000Z"}"#,
            "\n\n",
            r#"{"type": "AgentBaseEvent", "severity": "20", "description": "shift end"}"#,
            "\n",
            r#"{"type": "AgentBaseEvent", "severity": 25}"#,
            "\n",
            r#"{"type": "AgentBaseEvent", "severity": 40, "description": "never sent"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = mc_agent(&cwd, &["event", "--events", "events.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`events.jsonl` line 4: severity `25`")
            && stderr.contains("2 events before it were sent"),
        "{stderr}"
    );
    let out = mc_agent_with_stdin(
        &cwd,
        &["event", "--events", "-"],
        concat!(
            r#"{"type": "AgentBaseEvent", "severity": "information", "description": "from stdin", "details": {}}"#,
            "\n"
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let agent = env.cloud.agent("edgewire_mqttagent").unwrap();
    let got: Vec<(String, String, String)> = agent
        .events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["severity"].as_str().unwrap().to_owned(),
                e["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want = [
        ("SensorInterruptEvent", "30", "pump 3 vibrates"),
        ("AgentBaseEvent", "40", "shift start"),
        ("AgentBaseEvent", "20", "shift end"),
        ("AgentBaseEvent", "40", "from stdin"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(got, want);
    assert_eq!(agent.events[0]["details"]["utilizedPercentage"], 87);
    assert_eq!(agent.events[1]["timestamp"], "2026-12-01T06:00:00.000Z");
    assert_eq!(env.cloud.report().get("events_rejected"), 0);
    env.sim.stop().await;
}

/// A file whose message would pass the broker's limit is refused before anything is sent,
/// with the sizes and the way out; under a raised limit the same file goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_message_limit_is_refused_naming_the_datalake() {
    let env = Env::start().await;
    let cwd = env.agent();
    // 100 KiB of bytes: 136,536 bytes of base64 — over 128 KiB as a message.
    std::fs::write(cwd.join("big.bin"), vec![7u8; 100 * 1024]).unwrap();
    let out = mc_agent(&cwd, &["upload", "big.bin"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`big.bin` has 102400 bytes")
            && stderr
                .contains("over the broker's message limit of 131072 bytes (--max-message-kb 128)")
            && stderr.contains("mc-agent upload --datalake"),
        "{stderr}"
    );
    assert_eq!(env.cloud.report().get("files"), 0);
    let out = mc_agent(&cwd, &["upload", "big.bin", "--max-message-kb", "200"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        env.cloud.agent("edgewire_mqttagent").unwrap().files[0]
            .content
            .len(),
        100 * 1024
    );
    env.sim.stop().await;
}

/// The agent runs with secrets in its environment, `--password-env` naming one and careless
/// `--hook-env` flags naming them all; the command hook dumps its environment to a file, and
/// no secret name or value is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_hook_never_sees_the_agents_secrets() {
    let env = Env::start().await;
    publish_model(&env).await;
    let cwd = env.agent();
    let dump = cwd.join("hook-env.txt");
    let secrets = [
        ("GOOEE_TOKEN", "gooee-token-Yx71"),
        ("HDM_API_KEY", "hdm-key-Yx72"),
        ("BROKER_PW", "broker-pw-Yx73"),
    ];
    let hook = format!("firmware_update=env > {}", dump.display());
    let mut args = ONE_COMMAND_RUN.to_vec();
    args.extend([
        "--on-command",
        &hook,
        "-u",
        "agent",
        "--password-env",
        "BROKER_PW",
        "--hook-env",
        "SITE_NAME",
        "--output",
        "json",
    ]);
    for (name, _) in secrets {
        args.extend(["--hook-env", name]);
    }
    let mut cmd = super::command(&cwd, &args);
    cmd.envs(secrets).env("SITE_NAME", "plant-7");
    let mut bg = testkit::cli::Running::spawn(&mut cmd);
    answer_one_command(&env, &mut bg, "firmware_update").await;
    let seen = std::fs::read_to_string(&dump).unwrap();
    for (name, value) in secrets {
        assert!(
            !seen.contains(name) && !seen.contains(value),
            "the hook saw {name}: {seen}"
        );
    }
    assert!(seen.lines().any(|l| l == "SITE_NAME=plant-7"), "{seen}");
    assert!(
        seen.lines().any(|l| l.starts_with("MC_")),
        "the context is there: {seen}"
    );
    env.sim.stop().await;
}

/// The custom data format end to end: the topic registered (library call, as
/// `mc-model register-topic` does), then `mc-agent custom` publishes a file and stdin lines
/// unchanged; the platform keeps them on the registration; an unregistered topic's message is
/// dropped by the platform and a non-JSON line is refused before connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_data_arrives_unchanged_on_the_registered_topic() {
    let env = Env::start().await;
    let cwd = env.agent();
    let topic = "clouddatastore/edgewire_mqttagent/ts";
    env.register_custom_topic(topic).await;

    let doc = CUSTOM_DOC;
    std::fs::write(cwd.join("custom.json"), doc).unwrap();
    let out = mc_agent(&cwd, &["custom", "--topic", topic, "--data", "custom.json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = mc_agent_with_stdin(
        &cwd,
        &["custom", "--topic", topic, "--data", "-"],
        "{\"n\": 1}\n\n{\"n\": 2}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let kept = &env.cloud.custom_topic(topic).unwrap().documents;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(
        kept[0],
        serde_json::from_str::<serde_json::Value>(doc).unwrap()
    );
    assert_eq!(
        (kept[1]["n"].as_i64(), kept[2]["n"].as_i64()),
        (Some(1), Some(2))
    );

    let out = mc_agent(
        &cwd,
        &[
            "custom",
            "--topic",
            "clouddatastore/edgewire_mqttagent/other",
            "--data",
            "custom.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "the broker takes it: {out:?}");
    assert!(
        testkit::wait::until(Duration::from_secs(10), || {
            env.cloud.report().get("custom_unregistered") == 1
        })
        .await,
        "the platform drops what arrives on an unregistered topic"
    );
    std::fs::write(cwd.join("broken.json"), "{\"n\": ").unwrap();
    let out = mc_agent(&cwd, &["custom", "--topic", topic, "--data", "broken.json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("`broken.json` is not JSON"));
    assert_eq!(env.cloud.custom_topic(topic).unwrap().documents.len(), 3);
    env.sim.stop().await;
}
