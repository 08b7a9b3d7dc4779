//! The hook runner with real processes (`sh`, `head`, `sleep`): a hook that outlives its
//! timeout and leaves a grandchild behind, one that writes 10 MB, one that never reads a large
//! stdin, the concurrency limit, and the minimal environment (no secret, not even by --hook-env).

// Test helpers fail by panicking with a message; that is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use hook::{Call, DEFAULT_OUTPUT_CAP, Ending, Runner, Settings};

fn sh(script: &str, timeout: Duration) -> Call {
    Call {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout,
        ..Call::default()
    }
}

/// Whether `pid` is gone: no such process, or a zombie waiting for whoever adopted it.
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_timeout_kills_the_hook_and_the_grandchild_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let started = Instant::now();
    let done = Runner::default()
        .run(sh(&script, Duration::from_millis(500)))
        .await;
    assert!(matches!(done.ending, Ending::TimedOut), "{done:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    let grandchild = read_pid(&pid_file);
    assert!(
        testkit::wait::until(Duration::from_secs(5), || dead(grandchild)).await,
        "the grandchild {grandchild} outlived the hook's timeout"
    );
}

#[tokio::test]
async fn ten_megabytes_of_output_are_capped_and_the_rest_counted() {
    let ten_mb: u64 = 10 * 1024 * 1024;
    let done = Runner::default()
        .run(sh(
            &format!("head -c {ten_mb} /dev/zero; echo oops >&2"),
            Duration::from_secs(30),
        ))
        .await;
    assert!(done.success(), "{:?}", done.ending);
    assert_eq!(done.stdout.bytes.len(), DEFAULT_OUTPUT_CAP);
    assert_eq!(
        done.stdout.discarded,
        ten_mb - DEFAULT_OUTPUT_CAP as u64,
        "every byte was read"
    );
    assert_eq!(done.stderr.text(), "oops\n");
}

#[tokio::test]
async fn a_hook_that_never_reads_a_large_stdin_is_bounded_by_the_timeout() {
    let mut call = sh("sleep 60", Duration::from_millis(500));
    call.stdin = vec![b'x'; 8 * 1024 * 1024];
    let started = Instant::now();
    let done = Runner::default().run(call).await;
    assert!(matches!(done.ending, Ending::TimedOut), "{done:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // One that exits at once without reading is simply done.
    let mut call = sh("exit 0", Duration::from_secs(10));
    call.stdin = vec![b'x'; 8 * 1024 * 1024];
    assert!(Runner::default().run(call).await.success());
    // And one that reads it all gets it all.
    let mut call = sh("wc -c", Duration::from_secs(10));
    call.stdin = vec![b'x'; 8 * 1024 * 1024];
    let done = Runner::default().run(call).await;
    assert_eq!(done.stdout.text().trim(), (8 * 1024 * 1024).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_concurrency_limit_runs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let runner = Runner::new(Settings {
        concurrency: 2,
        ..Settings::default()
    });
    let script = format!(
        "echo + >> {log}; sleep 0.3; echo - >> {log}",
        log = log.display()
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (runner, call) = (runner.clone(), sh(&script, Duration::from_secs(20)));
        tasks.spawn(async move { runner.run(call).await.success() });
    }
    while let Some(ok) = tasks.join_next().await {
        assert!(ok.unwrap());
    }
    let (mut running, mut most) = (0i32, 0i32);
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        running += if line == "+" { 1 } else { -1 };
        most = most.max(running);
    }
    assert_eq!(text.lines().count(), 12, "{text}");
    assert_eq!(most, 2, "at most two at once, and two did overlap: {text}");
}

#[tokio::test]
async fn the_hook_sees_no_secret_only_the_minimal_environment() {
    let agent_env: Vec<(OsString, OsString)> = [
        (
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("HOME", "/home/agent".into()),
        ("LC_ALL", "C.UTF-8".into()),
        ("GOOEE_TOKEN", "secret-gooee-token".into()),
        ("HDM_API_KEY", "secret-hdm-key".into()),
        ("MY_BROKER_PASSWORD", "secret-password".into()),
        ("SITE_NAME", "plant-7".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    let runner = Runner::with_parent_env(
        Settings {
            pass_env: vec!["SITE_NAME".into()],
            ..Settings::default()
        },
        agent_env,
    );
    let mut call = sh("env", Duration::from_secs(10));
    call.env = vec![("EDGEWIRE_TEST_CONTEXT".into(), "cmd-1".into())];
    let done = runner.run(call).await;
    assert!(done.success(), "{:?} {}", done.ending, done.stderr.text());
    let env = done.stdout.text();
    for secret in [
        "GOOEE_TOKEN",
        "HDM_API_KEY",
        "MY_BROKER_PASSWORD",
        "secret-",
    ] {
        assert!(!env.contains(secret), "the hook saw {secret}: {env}");
    }
    for present in [
        "HOME=/home/agent",
        "LC_ALL=C.UTF-8",
        "SITE_NAME=plant-7",
        "EDGEWIRE_TEST_CONTEXT=cmd-1",
        "PATH=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(present)),
            "no {present}: {env}"
        );
    }
}

#[tokio::test]
async fn a_program_that_does_not_exist_is_reported_not_run() {
    let call = Call {
        program: "/nonexistent/edgewire-hook".into(),
        timeout: Duration::from_secs(5),
        ..Call::default()
    };
    let done = Runner::default().run(call).await;
    assert!(matches!(done.ending, Ending::NotStarted(_)), "{done:?}");
}

#[tokio::test]
async fn stopping_the_wait_kills_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("hook.pid");
    let script = format!("echo $$ > {}; sleep 60", pid_file.display());
    let runner = Runner::default();
    let started =
        || std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<u32>().is_ok());
    {
        // Give up on the hook as an agent does at shutdown: drop the future once it started.
        let run = runner.run(sh(&script, Duration::from_secs(60)));
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => panic!("the hook ended by itself"),
            up = testkit::wait::until(Duration::from_secs(5), started) => assert!(up),
        }
    }
    let pid = read_pid(&pid_file);
    assert!(
        testkit::wait::until(Duration::from_secs(5), || dead(pid)).await,
        "the hook {pid} outlived the agent's interest"
    );
}

#[tokio::test]
async fn not_even_hook_env_passes_a_secret_to_a_hook_that_dumps_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("env.txt");
    let secrets = [
        ("GOOEE_TOKEN", "gooee-token-Zq81"),
        ("HDM_API_KEY", "hdm-key-Zq82"),
        ("HDM_AUTH_TOKEN", "hdm-bearer-Zq83"),
        ("PGPASSWORD", "pg-pw-Zq84"),
        ("MYSQL_PWD", "my-pw-Zq85"),
        // What `--password-env BROKER_PW` names: withheld by the agent's settings.
        ("BROKER_PW", "broker-pw-Zq86"),
    ];
    let mut agent_env: Vec<(OsString, OsString)> = secrets
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    agent_env.push(("PATH".into(), "/usr/bin:/bin".into()));
    agent_env.push(("SITE_NAME".into(), "plant-7".into()));
    let runner = Runner::with_parent_env(
        Settings {
            // A careless `--hook-env` for every one of them, and one harmless name.
            pass_env: secrets
                .iter()
                .map(|(k, _)| (*k).to_owned())
                .chain(["SITE_NAME".to_owned()])
                .collect(),
            withhold: vec!["BROKER_PW".into()],
            ..Settings::default()
        },
        agent_env,
    );
    assert_eq!(runner.settings().pass_env, ["SITE_NAME"]);
    // A script file, as users write hooks; it dumps everything it was given.
    let script = dir.path().join("hook.sh");
    std::fs::write(&script, format!("#!/bin/sh\nenv > {}\n", dump.display())).unwrap();
    let call = Call {
        program: "sh".into(),
        args: vec![script.into_os_string()],
        timeout: Duration::from_secs(10),
        ..Call::default()
    };
    let done = runner.run(call).await;
    assert!(done.success(), "{:?} {}", done.ending, done.stderr.text());
    let env = std::fs::read_to_string(&dump).unwrap();
    for (name, value) in secrets {
        assert!(
            !env.contains(value) && !env.contains(name),
            "the hook saw {name}: {env}"
        );
    }
    assert!(env.lines().any(|l| l == "SITE_NAME=plant-7"), "{env}");
}
