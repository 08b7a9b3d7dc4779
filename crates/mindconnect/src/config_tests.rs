//! Tests of config loading: the seed's file as is, sections, flat files, typed errors naming
//! file and key, path resolution, flag overrides and the identity rule.

use super::*;

const SEED: &str = r#"{
	"AWS": {
		"IOT_HOST": "mindconnectmqtt.eu1.mindsphere.io",
		"CLIENT_ID": "tenantid_mqttagent",
		"DEVICE_NAME": "mqttagent",
		"TENANT_ID": "tenantid",
		"CA_PATH": "agent_cert/MindSphereRootCA1.pem",
		"DEVICE_CERT_PATH": "agent_cert/tenantid_mqttagent.pem",
		"DEVICE_KET_PATH": "agent_cert/tenantid_mqttagent.key",
		"MODEL_NAME": "JetPumpModel",
		"GW_URL": "https://gateway.eu1.mindsphere.io",
		"SGW_URL": "https://southgate.eu1.mindsphere.io",
		"PLATFORM": "AWS"
	}
}"#;

fn p() -> PathBuf {
    PathBuf::from("configs/mqtt-config.json")
}

#[test]
fn the_seed_file_parses_as_is() {
    let c = ConfigFile::parse(SEED, &p(), None).unwrap();
    assert_eq!(c.section.as_deref(), Some("AWS"));
    assert_eq!(c.client_id.as_deref(), Some("tenantid_mqttagent"));
    assert_eq!(
        c.device_key_path.as_deref(),
        Some("agent_cert/tenantid_mqttagent.key")
    );
    assert_eq!(c.model_name.as_deref(), Some("JetPumpModel"));
}

#[test]
fn sections_flat_files_and_the_older_section_name() {
    let old = SEED.replace("\"AWS\": {", "\"AWS_PROD\": {");
    assert_eq!(
        ConfigFile::parse(&old, &p(), None)
            .unwrap()
            .section
            .as_deref(),
        Some("AWS_PROD")
    );
    assert_eq!(
        ConfigFile::parse(&old, &p(), Some("aws_prod"))
            .unwrap()
            .section
            .as_deref(),
        Some("AWS_PROD")
    );
    let e = ConfigFile::parse(&old, &p(), Some("aws"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no section `AWS`; its sections are: AWS_PROD"),
        "{e}"
    );
    let flat = r#"{"CLIENT_ID":"t_a","TENANT_ID":"t","DEVICE_KEY_PATH":"k"}"#;
    let c = ConfigFile::parse(flat, &p(), None).unwrap();
    assert_eq!((c.section, c.device_key_path.as_deref()), (None, Some("k")));
    let two = r#"{"DEV":{"CLIENT_ID":"x"},"PRD":{"CLIENT_ID":"y"}}"#;
    assert!(matches!(
        ConfigFile::parse(two, &p(), None),
        Err(ConfigError::Section { .. })
    ));
}

#[test]
fn malformed_files_name_file_and_key() {
    let e = ConfigFile::parse("{\"AWS\": {", &p(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config file `configs/mqtt-config.json` is not valid JSON: EOF"),
        "{e}"
    );
    let e = ConfigFile::parse(r#"{"AWS":{"CLIENT_ID": 5}}"#, &p(), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config file `configs/mqtt-config.json`: `CLIENT_ID` (section `AWS`) must be a string, found a number"
    );
    assert!(matches!(
        ConfigFile::parse("[1]", &p(), None),
        Err(ConfigError::Shape { .. })
    ));
    assert!(matches!(
        ConfigFile::parse("{}", &p(), None),
        Err(ConfigError::Shape { .. })
    ));
}

#[test]
fn iot_host_becomes_a_broker_url() {
    assert_eq!(
        broker_url("mindconnectmqtt.eu1.mindsphere.io"),
        "mqtts://mindconnectmqtt.eu1.mindsphere.io:8883"
    );
    assert_eq!(broker_url("localhost:4711"), "mqtts://localhost:4711");
    assert_eq!(broker_url("mqtts://h:1/"), "mqtts://h:1");
}

#[test]
fn identity_errors_say_what_differs() {
    let c = Path::new("agent_cert/x.pem");
    assert!(check_identity("t_dev", "t", "dev", c).is_ok());
    let e = check_identity("t_other", "t", "dev", c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expects TENANT_ID + \"_\" + the certificate's CN = `t_dev`"),
        "{e}"
    );
    assert!(
        e.contains("after `t_` it has `other` where the certificate says `dev`"),
        "{e}"
    );
    let e = check_identity("x_dev", "t", "dev", c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not start with `t_`"), "{e}");
    let e = check_identity("dev", "t", "dev", c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bare CN"), "{e}");
}

fn seed_layout(cn: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::Pki::generate(&dir.path().join("pki"));
    let cert = pki.client(cn);
    std::fs::create_dir_all(dir.path().join("agent_cert")).unwrap();
    std::fs::create_dir_all(dir.path().join("configs")).unwrap();
    std::fs::copy(
        &cert.cert,
        dir.path().join("agent_cert/tenantid_mqttagent.pem"),
    )
    .unwrap();
    std::fs::copy(
        &cert.key,
        dir.path().join("agent_cert/tenantid_mqttagent.key"),
    )
    .unwrap();
    std::fs::copy(
        pki.ca_cert(),
        dir.path().join("agent_cert/MindSphereRootCA1.pem"),
    )
    .unwrap();
    let cfg = dir.path().join("configs/mqtt-config.json");
    std::fs::write(&cfg, SEED).unwrap();
    (dir, cfg)
}

#[test]
fn the_seed_layout_resolves_and_checks_the_certificate() {
    let (dir, cfg) = seed_layout("mqttagent");
    let s =
        Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &Overrides::default()).unwrap();
    assert_eq!(s.agent_name, "mqttagent");
    assert_eq!(s.session.client_id, "tenantid_mqttagent");
    assert_eq!(
        s.session.endpoint.to_string(),
        "mqtts://mindconnectmqtt.eu1.mindsphere.io:8883"
    );
    assert_eq!(
        s.session.tls.client_cert.as_deref(),
        Some(
            dir.path()
                .join("agent_cert/tenantid_mqttagent.pem")
                .as_path()
        )
    );
    assert_eq!(
        s.topics.topic(crate::protocol::Channel::Timeseries),
        "tc/tenantid/tenantid_mqttagent/o/mc_v3/ts"
    );
    assert_eq!(
        s.gw_url.as_deref(),
        Some("https://gateway.eu1.mindsphere.io")
    );
}

#[test]
fn a_wrong_client_id_or_a_missing_certificate_is_refused() {
    let (dir, cfg) = seed_layout("otheragent");
    let e = Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &Overrides::default())
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Identity(m) if m.cn == "otheragent"),
        "{e}"
    );
    let o = Overrides {
        connect: ConnectSettings {
            client_id: Some("tenantid_otheragent".into()),
            ..ConnectSettings::default()
        },
        ..Overrides::default()
    };
    assert!(
        Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &o).is_ok(),
        "--client-id overrides CLIENT_ID"
    );
    std::fs::remove_file(dir.path().join("agent_cert/tenantid_mqttagent.key")).unwrap();
    let e = Settings::resolve(ConfigFile::load(&cfg, None).unwrap(), &o)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("certificates missing: DEVICE_KET_PATH `agent_cert/tenantid_mqttagent.key` does not exist"), "{e}");
    let e = ConfigFile::load(&dir.path().join("nope.json"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read the config file"), "{e}");
}

#[test]
fn unsupported_platforms_and_missing_keys_are_named() {
    let c = ConfigFile::parse(
        &SEED.replace("\"PLATFORM\": \"AWS\"", "\"PLATFORM\": \"AZURE\""),
        &p(),
        None,
    )
    .unwrap();
    assert!(matches!(
        Settings::resolve(c, &Overrides::default()),
        Err(ConfigError::Platform { .. })
    ));
    let c = ConfigFile::parse(r#"{"AWS":{"CLIENT_ID":"t_a"}}"#, &p(), None).unwrap();
    let e = Settings::resolve(c, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config file `configs/mqtt-config.json` has no `TENANT_ID` (section `AWS`) and --tenant was not given"
    );
}

#[test]
fn the_shipped_example_has_the_seed_section_and_the_local_cloud_section() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/mindconnect/mqtt-config.json");
    let seed = ConfigFile::load(&path, None).unwrap();
    assert_eq!(
        (seed.section.as_deref(), seed.client_id.as_deref()),
        (Some("AWS"), Some("tenantid_mqttagent"))
    );
    let sim = ConfigFile::load(&path, Some("iotsim")).unwrap();
    assert_eq!(sim.client_id.as_deref(), Some("edgewire_mqttagent"));
    assert_eq!(sim.http_ca_path.as_deref(), Some("agent_cert/ca.pem"));
    // `iot-sim up --port-base 18880` puts the mTLS listener on 18882: the file works unedited.
    assert_eq!(
        broker_url(sim.iot_host.as_deref().unwrap()),
        "mqtts://localhost:18882"
    );
}

#[test]
fn the_2024_samples_custom_format_keys_are_read_or_refused() {
    let with = |extra: &str| {
        SEED.replace(
            "\"PLATFORM\": \"AWS\"",
            &format!("\"PLATFORM\": \"AWS\", {extra}"),
        )
    };
    let c = ConfigFile::parse(
        &with(r#""USE_CUSTOM_TIMESERIES": "True", "CUSTOM_TOPIC": "clouddatastore/tenantid_mqttagent/ts""#),
        &p(),
        None,
    )
    .unwrap();
    assert_eq!(
        c.custom_topic.as_deref(),
        Some("clouddatastore/tenantid_mqttagent/ts")
    );
    let e = ConfigFile::parse(&with(r#""USE_CUSTOM_TIMESERIES": "True""#), &p(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config file `configs/mqtt-config.json`: USE_CUSTOM_TIMESERIES True: the custom data format needs CUSTOM_TOPIC"),
        "{e}"
    );
    let e = ConfigFile::parse(&with(r#""USE_CUSTOM_TIMESERIES": "maybe""#), &p(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected \"True\" or \"False\""), "{e}");
    for off in [
        r#""USE_CUSTOM_TIMESERIES": "False", "CUSTOM_TOPIC": "pump""#,
        r#""USE_CUSTOM_TIMESERIES": false"#,
        r#""TENANT_CERT_PATH": "x.pem""#,
    ] {
        let c = ConfigFile::parse(&with(off), &p(), None).unwrap();
        assert_eq!(c.custom_topic, None, "{off}");
    }
}

#[test]
fn plain_http_gateway_urls_to_another_machine_are_refused_naming_key_and_file() {
    let (_dir, cfg) = seed_layout("mqttagent");
    std::fs::write(
        &cfg,
        SEED.replace(
            "https://southgate.eu1.mindsphere.io",
            "http://southgate.eu1.mindsphere.io",
        ),
    )
    .unwrap();
    let load = || ConfigFile::load(&cfg, None).unwrap();
    let e = Settings::resolve(load(), &Overrides::default()).unwrap_err();
    assert!(matches!(e, ConfigError::Url(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("`SGW_URL` in `") && e.contains("mqtt-config.json") && e.contains("plain http"),
        "{e}"
    );
    // A flag is named as the flag; loopback may be plain; --allow-plaintext lets it through.
    let mut o = Overrides {
        gw_url: Some("http://gw.example.com".into()),
        sgw_url: Some("http://127.0.0.1:8080".into()),
        ..Overrides::default()
    };
    let e = Settings::resolve(load(), &o).unwrap_err().to_string();
    assert!(e.contains("--gw-url") && !e.contains("SGW_URL"), "{e}");
    o.connect.allow_plaintext = true;
    let s = Settings::resolve(load(), &o).unwrap();
    assert!(s.allow_plaintext);
}

#[test]
fn model_api_is_read_refused_or_left_to_agent_ini() {
    use ModelApi::{V3, V4};
    let with = |extra: &str| {
        SEED.replace(
            "\"PLATFORM\": \"AWS\"",
            &format!("\"PLATFORM\": \"AWS\", {extra}"),
        )
    };
    for (text, want) in [
        (r#""MODEL_API": "v4""#, Some(ModelApi::V4)),
        (r#""MODEL_API": "AMO_V3""#, Some(ModelApi::V3)),
        (r#""MODEL_API": """#, None),
        (r#""CLIENT_ID2": "x""#, None),
    ] {
        let c = ConfigFile::parse(&with(text), &p(), None).unwrap();
        assert_eq!(c.model_api, want, "{text}");
    }
    let e = ConfigFile::parse(&with(r#""MODEL_API": "v5""#), &p(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config file `configs/mqtt-config.json`: MODEL_API v5: expected \"v3\""),
        "{e}"
    );
    assert_eq!(ModelApi::choose(None, None, false), (V3, "no agent.ini"));
    assert_eq!(ModelApi::choose(None, None, true), (V4, "agent.ini exists"));
    assert_eq!(ModelApi::choose(None, Some(V3), true), (V3, "MODEL_API"));
    assert_eq!(
        ModelApi::choose(Some(V4), Some(V3), false),
        (V4, "--model-api")
    );
}

#[test]
fn an_agent_without_a_config_file_keeps_the_identity_rule() {
    let so = |client_id: &str| {
        let mut o = ConnectSettings {
            broker: Some("mqtts://localhost:8883".into()),
            ..ConnectSettings::default()
        }
        .session_options(None)
        .unwrap();
        o.client_id = client_id.into();
        o
    };
    let s =
        Settings::for_agent("t1", "pump-7", so("t1_pump-7"), Some("JetPumpModel".into())).unwrap();
    assert_eq!(
        (
            s.topics.tenant(),
            s.topics.client_id(),
            s.agent_name.as_str()
        ),
        ("t1", "t1_pump-7", "pump-7")
    );
    assert_eq!(s.require_model_name().unwrap(), "JetPumpModel");
    let e = Settings::for_agent("t1", "pump-7", so("pump-7"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("t1_pump-7"), "{e}");
}
