//! iot-sim as a pipeline uses it: `up --port-base N --detach`, `env`, `status`, `down`, and the
//! `completions` and `man` subcommands every binary shares.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;

use cli::output::exit;

use crate::{events, iot_sim, run};

/// A base port N such that N..N+6 are free on 127.0.0.1 right now (checked by binding them all).
fn free_base() -> u16 {
    free_base_held().0
}

/// [`free_base`] and the six listeners that proved it, still bound.
fn free_base_held() -> (u16, Vec<TcpListener>) {
    for _ in 0..200 {
        let base = 20_000 + fastrand::u16(..40_000);
        let held: Vec<_> = (0..6)
            .map_while(|i| TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).ok())
            .collect();
        if held.len() == 6 {
            return (base, held);
        }
    }
    panic!("no 6 consecutive free ports found");
}

#[test]
fn detached_up_serves_fixed_ports_env_describes_it_and_down_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let base = free_base();
    let b = base.to_string();

    let out = run(iot_sim().current_dir(d).args([
        "--output",
        "json",
        "up",
        "--detach",
        "--port-base",
        &b,
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    testkit::schema::validate("iot-sim", &out.stdout);
    let up = &events(&out.stdout)[0];
    assert_eq!(up.0, "up");
    let listeners = &up.1["listeners"];
    for (i, (name, url)) in [
        ("plain", format!("mqtt://127.0.0.1:{base}")),
        ("ws", format!("ws://127.0.0.1:{}/mqtt", base + 1)),
        ("mtls", format!("mqtts://localhost:{}", base + 2)),
        ("tls_password", format!("mqtts://localhost:{}", base + 3)),
        ("wss", format!("wss://localhost:{}/mqtt", base + 4)),
        ("https", format!("https://localhost:{}", base + 5)),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(listeners[name], url.as_str(), "listener {i} ({name})");
    }

    // A second `up` on the same state folder is refused, naming the running one.
    let again = run(iot_sim().current_dir(d).args(["up", "--port-base", &b]));
    assert_eq!(again.status.code(), Some(i32::from(exit::FAILURE)));
    assert!(String::from_utf8_lossy(&again.stderr).contains("iot-sim down"));

    // env: sh lines that a shell evaluates, JSON, and GitHub's NAME=value.
    let sh = run(iot_sim().current_dir(d).arg("env"));
    assert_eq!(sh.status.code(), Some(0));
    let script = format!(
        "{}\nprintf '%s\\n' \"$EDGEWIRE_SIM_MTLS\" \"$EDGEWIRE_SIM_CA\"",
        String::from_utf8_lossy(&sh.stdout)
    );
    let shell = Command::new("sh").args(["-c", &script]).output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&shell.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines[0], format!("mqtts://localhost:{}", base + 2));
    assert!(std::path::Path::new(&lines[1]).is_file(), "the CA exists");
    let json = run(iot_sim().current_dir(d).args(["env", "--format", "json"]));
    let vars: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        vars["EDGEWIRE_SIM_HTTPS"],
        format!("https://localhost:{}", base + 5).as_str()
    );
    assert_eq!(vars["EDGEWIRE_SIM_USERNAME"], "edgewire");
    let gh = run(iot_sim().current_dir(d).args(["env", "--format", "github"]));
    assert!(
        String::from_utf8_lossy(&gh.stdout)
            .starts_with(&format!("EDGEWIRE_SIM_PLAIN=mqtt://127.0.0.1:{base}\n"))
    );

    // The listeners serve: a publish through the plain one (with the service account `env`
    // names) reaches the cloud side.
    assert_eq!(vars["EDGEWIRE_SIM_SERVICE_USERNAME"], "iot-sim");
    let service = vars["EDGEWIRE_SIM_SERVICE_PASSWORD_FILE"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain = format!("mqtt://127.0.0.1:{base}");
    let out = run(iot_sim().args([
        "--output",
        "json",
        "pub",
        "-u",
        "iot-sim",
        "--password-file",
        &service,
        "-b",
        &plain,
        "-t",
        "demo/plain/reading",
        "-C",
        "2",
    ]));
    assert_eq!(out.status.code(), Some(0));
    testkit::schema::validate("iot-sim", &out.stdout);
    let status = run(iot_sim()
        .current_dir(d)
        .args(["--output", "json", "status"]));
    testkit::schema::validate("iot-sim", &status.stdout);
    let certs = run(iot_sim().current_dir(d).args(["--output", "json", "certs"]));
    testkit::schema::validate("iot-sim", &certs.stdout);

    let down = run(iot_sim().current_dir(d).args(["--output", "json", "down"]));
    assert_eq!(down.status.code(), Some(0));
    testkit::schema::validate("iot-sim", &down.stdout);
    assert_eq!(events(&down.stdout)[0].1["result"], "stopped");
    assert!(
        TcpListener::bind((Ipv4Addr::LOCALHOST, base)).is_ok(),
        "the port is free again after down"
    );
    let status = run(iot_sim().current_dir(d).arg("status"));
    assert_eq!(status.status.code(), Some(i32::from(exit::FAILURE)));
    let down = run(iot_sim().current_dir(d).args(["--output", "json", "down"]));
    assert_eq!(down.status.code(), Some(0), "down twice is fine");
    testkit::schema::validate("iot-sim", &down.stdout);
    assert_eq!(events(&down.stdout)[0].1["result"], "not_running");
    let env = run(iot_sim().current_dir(d).arg("env"));
    assert_eq!(env.status.code(), Some(i32::from(exit::FAILURE)));
}

#[test]
fn a_taken_port_fails_detached_up_with_the_address() {
    let dir = tempfile::tempdir().unwrap();
    // Keep the mtls port (base + 2) bound, release the others.
    let (base, mut held) = free_base_held();
    let _taken = held.swap_remove(2);
    drop(held);
    let out = run(iot_sim().current_dir(dir.path()).args([
        "up",
        "--detach",
        "--port-base",
        &base.to_string(),
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{}", base + 2))
            && err.contains("exited before it was ready"),
        "{err}"
    );
}

#[test]
fn bash_loads_the_completion_script_and_man_renders_the_page() {
    let bin = env!("CARGO_BIN_EXE_iot-sim");
    let script = format!("source <('{bin}' completions bash) && complete -p iot-sim");
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("iot-sim"));
    for shell in ["zsh", "fish", "powershell"] {
        let out = run(iot_sim().args(["completions", shell]));
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("iot-sim"));
    }

    let dir = tempfile::tempdir().unwrap();
    let out = run(iot_sim().args(["man", "--dir"]).arg(dir.path()));
    assert_eq!(out.status.code(), Some(0));
    for page in [
        "iot-sim.1",
        "iot-sim-up.1",
        "iot-sim-env.1",
        "iot-sim-down.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    let rendered = render_man(&dir.path().join("iot-sim-up.1"));
    assert!(rendered.contains("port-base"), "{rendered}");
}

/// The page as a reader sees it: `man -l`, else groff or mandoc.
fn render_man(page: &std::path::Path) -> String {
    let attempts: [(&str, &[&str]); 3] = [
        ("man", &["-l", "-P", "cat"]),
        ("groff", &["-man", "-Tutf8"]),
        ("mandoc", &[]),
    ];
    for (prog, args) in attempts {
        if let Ok(out) = Command::new(prog)
            .args(args)
            .arg(page)
            .env("MANWIDTH", "100")
            .output()
            && out.status.success()
        {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
    }
    panic!("neither man, groff nor mandoc rendered {}", page.display());
}
