//! `iot-sim certs`, `up`, `status` and `demo` as a user runs them.

use std::time::{Duration, Instant};

use cli::output::exit;

use crate::{Running, events, iot_sim, run};

#[test]
fn certs_writes_a_dev_pki_once_and_refuses_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("agent_cert");
    let out = run(iot_sim().args([
        "--output",
        "json",
        "certs",
        "--dir",
        certs.to_str().unwrap(),
        "--client",
        "press-7",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let ev = events(&out.stdout);
    assert_eq!(ev[0].0, "certs");
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();
    assert!(certs.join("press-7.key").exists());
    assert!(
        certs.join("demo-device.pem").exists(),
        "the generic demo device is always issued"
    );
    let out = run(iot_sim().args(["certs", "--dir", certs.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    assert_eq!(
        std::fs::read(certs.join("ca.pem")).unwrap(),
        ca,
        "a second run keeps the CA"
    );

    let foreign = dir.path().join("theirs");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("ca.pem"), "not ours").unwrap();
    let out = run(iot_sim().args(["certs", "--dir", foreign.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
}

#[test]
fn demo_exits_zero_with_every_check_passed_and_one_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(iot_sim()
        .current_dir(d)
        .args(["--output", "json", "demo", "--messages", "30"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let ev = events(&out.stdout);
    assert_eq!(ev[0].1["ok"], true);
    // Every vendor's rows, each passing on its own terms: a dropped check changes a count.
    let rows = ev[0].1["rows"].as_array().unwrap();
    let count = |vendor: &str| rows.iter().filter(|r| r["vendor"] == vendor).count();
    let per_vendor = [
        ("transport", 10),
        ("gooee", 16),
        ("hdm", 6),
        ("mindconnect", 17),
        ("iotconnect", 21),
        ("mqtt-sink", 3),
    ];
    for (vendor, n) in per_vendor {
        assert_eq!(count(vendor), n, "{vendor}'s rows: {rows:#?}");
    }
    assert_eq!(rows.len(), per_vendor.iter().map(|(_, n)| n).sum::<usize>());
    assert!(
        rows.iter()
            .all(|r| r["ok"] == true && r["expected"] == r["got"]),
        "{rows:#?}"
    );

    let out =
        run(iot_sim()
            .current_dir(d)
            .args(["demo", "--messages", "30", "--sabotage", "mtls"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SOME CHECKS FAILED") && text.contains("mtls: confirmed by the broker"),
        "{text}"
    );
}

#[test]
fn up_serves_until_sigterm_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(iot_sim().current_dir(d).args(["status"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::FAILURE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running `iot-sim up`"));

    let mut up = Running::spawn(iot_sim().current_dir(d).arg("up"));
    let status_file = dir.path().join(".edgewire/sim/status.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(iot_sim()
        .current_dir(d)
        .args(["--output", "json", "status"]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let st = &events(&out.stdout)[0].1;
    assert!(
        st["listeners"]["mtls"]
            .as_str()
            .unwrap()
            .starts_with("mqtts://localhost:")
    );
    assert!(st["clouds"]["transport"].is_object());
    assert!(
        st["listeners"]["https"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:"),
        "vendor HTTPS endpoints are listed"
    );

    let url = st["listeners"]["plain"].as_str().unwrap().to_owned();
    // The plain port wants iot-sim's service account; without it a local user is refused.
    let service = dir.path().join(".edgewire/sim/service-password");
    let anonymous = run(iot_sim().args(["pub", "-b", &url, "-t", "demo/plain/reading"]));
    assert_ne!(anonymous.status.code(), Some(i32::from(exit::OK)));
    let out = run(iot_sim().args([
        "pub",
        "-u",
        "iot-sim",
        "--password-file",
        service.to_str().unwrap(),
        "-b",
        &url,
        "-t",
        "demo/plain/reading",
        "-C",
        "3",
        "--numbered",
    ]));
    assert_eq!(out.status.code(), Some(i32::from(exit::OK)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = run(iot_sim()
            .current_dir(d)
            .args(["--output", "json", "status"]));
        if events(&out.stdout)[0].1["clouds"]["transport"]["counters"]["received_plain"] == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the 3 messages"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let pid = up.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = up.child.wait().unwrap().code();
    assert_eq!(code, Some(i32::from(exit::OK)), "SIGTERM is a clean stop");
    assert!(
        !status_file.exists(),
        "a stopped sim leaves no status behind"
    );
}
