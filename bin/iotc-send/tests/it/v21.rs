//! Message 2.1 through the real `iotc-send` against iot-sim, on Azure and AWS: `run --simulate`
//! (values made once the attributes and children arrived), a device whose identity has no
//! attributes (everything on `rpt`, unvalidated), desired settings pushed by the platform and
//! answered with reported ones (checked by the cloud side, invalid ones held back), and a
//! gateway's children added, listed, sending telemetry and removed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use cloudkit::CloudSide;
use iotconnect::cloud::IotConnectCloud;
use iotconnect::cloud::admin::Request;
use iotconnect::cloud::template::{BUILTIN, TemplateFile};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Env, WAIT, admin, cmd, env, env_with, has, run};

const GW: &str = "iotc-gateway-01";

/// `unique_id`'s config speaking 2.1 on `pf` (`az` or `aws`).
fn config_21(e: &Env, unique_id: &str, pf: &str) -> PathBuf {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(e.config(unique_id)).unwrap()).unwrap();
    v["protocol"] = json!("2.1");
    v["platform"] = json!(pf);
    let path = e.dir.path().join(format!("{unique_id}-{pf}.json"));
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

/// `iotc-send run` in the background, its NDJSON lines collected as they come.
struct Running {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(config: &Path, args: &[&str]) -> Running {
        let mut child = cmd(config, args).stdout(Stdio::piped()).spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = out.next_line().await {
                sink.lock().unwrap().push(l);
            }
        });
        Running { child, lines }
    }

    fn has_line(&self, f: impl Fn(&Value) -> bool) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| f(&v))
    }

    async fn wait_line(&self, what: &str, f: impl Fn(&Value) -> bool) {
        let ok = testkit::wait::until(WAIT, || self.has_line(&f)).await;
        assert!(ok, "no {what} in {:#?}", self.lines.lock().unwrap());
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn resynced(v: &Value, scope: &str) -> bool {
    v["type"] == "resynced" && v["data"]["scope"] == scope
}

/// Bug: `run --simulate` on 2.1 built its values before the attributes (201) arrived, so it
/// sent nothing. Now the simulation starts once the attributes and children are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_sends_once_the_attributes_arrive_on_azure_and_aws() {
    let e = env().await;
    for (n, pf) in [(1, "az"), (2, "aws")] {
        let cfg = config_21(&e, GW, pf);
        let (code, ev) = run(
            &cfg,
            &[
                "run",
                "--simulate",
                "--count",
                "3",
                "--interval",
                "0.1",
                "--df",
                "0",
                "--exit-after-input",
            ],
        )
        .await;
        assert_eq!(code, 0, "{pf}: {ev:?}");
        let reporting = ev
            .iter()
            .filter(|x| x["type"] == "published" && x["data"]["kind"] == "reporting")
            .count();
        assert_eq!(reporting, 3, "{pf}: {ev:?}");
        assert_eq!(
            e.eventually("telemetry_messages", 3 * n).await,
            3 * n,
            "{pf}"
        );
        assert_eq!(e.report(&format!("identity_{pf}")), 1);
    }
    // Values for the gateway and both children (from the 204 answer), all of them valid.
    for id in [GW, "iotc-child-01", "iotc-child-02"] {
        assert!(e.report(&format!("values:{id}")) >= 6, "{id}");
    }
    assert_eq!(e.report("rejected") + e.report("rpt_invalid"), 0);
    assert_eq!(e.report("faulty_messages"), 0);
}

/// Bug: a 2.1 device whose identity says no `has.attr` marked every value faulty. Without
/// attributes everything goes to `rpt` unvalidated, as the lite SDK does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_without_attributes_sends_everything_on_rpt() {
    let mut t: Value = serde_json::from_str(BUILTIN).unwrap();
    t["templates"]["bare"] = json!({"dtg": "0f5a2c1e-bare", "df": 1});
    t["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"uniqueId": "iotc-bare-01", "template": "bare", "auth": 2}));
    let template = TemplateFile::parse(Path::new("bare.json"), &t.to_string()).unwrap();
    let e = env_with(IotConnectCloud::new(template)).await;
    for (n, pf) in [(1, "az"), (2, "aws")] {
        let cfg = config_21(&e, "iotc-bare-01", pf);
        let data =
            r#"[{"uniqueId":"iotc-bare-01","data":{"temperature":500,"note":"x","gyro":{"x":1}}}]"#;
        let (code, ev) = run(&cfg, &["data", "--data", data]).await;
        assert_eq!(code, 0, "{pf}: {ev:?}");
        assert!(
            !ev.iter()
                .any(|x| x["type"] == "published" && x["data"]["kind"] == "faulty"),
            "{pf}: {ev:?}"
        );
        assert_eq!(e.eventually("telemetry_values", 3 * n).await, 3 * n, "{pf}");
    }
    assert_eq!(e.report("identity_request_201"), 0, "has.attr is 0");
    assert_eq!(e.report("faulty_values") + e.report("rejected"), 0);
}

/// The platform pushes desired settings (Azure: the twin patch; AWS: the named shadow
/// `setting_info`); `run` answers with reported ones, which the cloud side checks against the
/// template's settings. A desired value the 202 settings refuse is not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_settings_are_answered_on_azure_and_aws() {
    let e = env().await;
    for (n, pf) in [(1, "az"), (2, "aws")] {
        // Each platform its own offline store: one run's leftovers are not the other's.
        let offline = e.dir.path().join(format!("offline-{pf}"));
        let a = Running::start(
            &config_21(&e, GW, pf),
            &[
                "run",
                "--df",
                "0",
                "--offline-dir",
                offline.to_str().unwrap(),
            ],
        );
        a.wait_line("settings (202)", |v| resynced(v, "settings"))
            .await;
        let mut desired = Map::new();
        desired.insert("interval".into(), json!(30));
        desired.insert("firmware".into(), json!(format!("2.{n}")));
        admin(
            &e,
            &Request::Twin {
                unique_id: GW.into(),
                desired,
            },
        )
        .await;
        assert!(
            e.eventually("twin_reported_in_sync", 2 * n).await >= 2 * n,
            "{pf}"
        );
        let mut bad = Map::new();
        bad.insert("interval".into(), json!(99_999));
        admin(
            &e,
            &Request::Twin {
                unique_id: GW.into(),
                desired: bad,
            },
        )
        .await;
        a.wait_line("the refused setting", |v| {
            v["type"] == "warning"
                && v["data"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("setting `interval`") && m.contains("1 to 3600"))
        })
        .await;
        assert!(
            a.has_line(|v| v["type"] == "twin"),
            "{pf}: the desired patch is reported"
        );
        a.stop().await;
    }
    let r = e.cloud.report();
    assert_eq!(
        (r.get("twin_reported_invalid"), r.get("rejected")),
        (0, 0),
        "{r:?}"
    );
}

/// A gateway's children as the platform keeps them: `child add` (221), the 204 list with the
/// new child (its telemetry is accepted with `id`/`tg`), `child remove` (222), after which its
/// data is dropped, and a second remove is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_added_listed_sent_for_and_removed() {
    let e = env().await;
    for pf in ["az", "aws"] {
        let cfg = config_21(&e, GW, pf);
        let kid = format!("iotc-child-{pf}");
        let (code, ev) = run(&cfg, &["child", "add", "--id", &kid, "--tag", "sensor"]).await;
        assert_eq!(code, 0, "{pf}: {ev:?}");
        let data = format!(
            r#"[{{"uniqueId":"{GW}","data":{{"temperature":20}}}},{{"uniqueId":"{kid}","data":{{"humidity":40,"battery":80}}}}]"#
        );
        let (code, ev) = run(&cfg, &["data", "--data", &data]).await;
        assert_eq!(code, 0, "{pf}: {ev:?}");
        assert!(has(&ev, "warning").is_none(), "{pf}: {ev:?}");
        assert_eq!(e.eventually(&format!("values:{kid}"), 2).await, 2, "{pf}");

        let (code, ev) = run(&cfg, &["child", "remove", "--id", &kid]).await;
        assert_eq!(code, 0, "{pf}: {ev:?}");
        assert_eq!(has(&ev, "child").unwrap()["message"], "child deleted");
        let (code, ev) = run(&cfg, &["data", "--data", &data]).await;
        assert_eq!(code, 0, "{pf}: {ev:?}");
        let w = has(&ev, "warning").unwrap();
        assert!(
            w["message"].as_str().unwrap().contains(&kid),
            "{pf}: the removed child's data is dropped: {w}"
        );
        let (code, ev) = run(&cfg, &["child", "remove", "--id", &kid]).await;
        assert_eq!(code, 3, "{pf}: removing it again is refused: {ev:?}");
    }
    let r = e.cloud.report();
    assert_eq!(
        r.get("values:iotc-child-az") + r.get("values:iotc-child-aws"),
        4,
        "{r:?}"
    );
    assert_eq!(r.get("rejected"), 0, "{r:?}");
}
