//! The embedded broker fails closed, against real clients: the loopback plain and WebSocket
//! ports want the service account (a local user cannot pose as a cloud side there, nor take
//! over a device's client id), and a client that no policy claims is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cloudkit::{AccessPolicy, Verdict};
use sim::broker::{BrokerSetup, EmbeddedBroker};
use sim::engine::{SERVICE_PASSWORD_FILE, SERVICE_USER, Sim};
use transport::auth::Credentials;
use transport::session::StartError;
use transport::{ConnectError, Message, Outbox, Session, SessionOptions};

use super::{connect, options};

fn refused_code(r: Result<Session, StartError>) -> u8 {
    match r {
        Err(StartError::Connect(ConnectError::Refused { code, .. })) => code,
        Err(e) => panic!("expected a CONNACK refusal, got {e}"),
        Ok(_) => panic!("the client was let in"),
    }
}

fn with_creds(mut o: SessionOptions, user: &str, pass: &str) -> SessionOptions {
    o.credentials = Some(Credentials {
        username: user.into(),
        password: Some(pass.into()),
    });
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_ports_want_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(options(dir.path()), sim::registry::clouds())
        .await
        .unwrap();
    let file = sim.state_dir().join(SERVICE_PASSWORD_FILE);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the service password is private");
    let service = std::fs::read_to_string(&file).unwrap();
    let dev = std::fs::read_to_string(sim.state_dir().join("password")).unwrap();
    for name in ["plain", "ws"] {
        let l = sim.listener(name).unwrap();
        let bare = || {
            let mut o = l.session_options().unwrap();
            o.credentials = None;
            o.client_id = format!("intruder-{name}");
            o
        };
        // What any local user could try: no credentials, a guess, the devices' password.
        assert_eq!(refused_code(connect(bare()).await), 4, "{name}: anonymous");
        assert_eq!(
            refused_code(connect(with_creds(bare(), SERVICE_USER, "guess")).await),
            4,
            "{name}: a wrong password"
        );
        assert_eq!(
            refused_code(connect(with_creds(bare(), "edgewire", dev.trim())).await),
            4,
            "{name}: the password listeners' account is not the service account"
        );
        // The service account, as the cloud sides and tools log in.
        let s = connect(with_creds(bare(), SERVICE_USER, service.trim()))
            .await
            .unwrap_or_else(|e| panic!("{name}: the service account was refused: {e}"));
        s.publish(Message::new("demo/plain/reading", "1"))
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
        s.close(Duration::from_secs(1)).await;
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_cannot_take_over_a_devices_client_id_on_the_plain_port() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(options(dir.path()), sim::registry::clouds())
        .await
        .unwrap();
    let mut device = sim.listener("mtls").unwrap().session_options().unwrap();
    device.client_id = "plant-device-1".into();
    let (s, _i) = Session::start(device, Outbox::memory(10)).await.unwrap();
    let mut intruder = sim.listener("plain").unwrap().session_options().unwrap();
    intruder.credentials = None;
    intruder.client_id = "plant-device-1".into();
    assert_eq!(refused_code(connect(intruder).await), 4);
    // The device's session was not kicked: its next publish is confirmed at once.
    tokio::time::timeout(Duration::from_secs(5), async {
        s.publish(Message::new("demo/mtls/reading", "2"))
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
    })
    .await
    .expect("the device's session survived");
    s.close(Duration::from_secs(1)).await;
    sim.stop().await;
}

/// Accepts the password `letmein` for user `vendor-user`, claims nothing else.
struct OnePassword;

impl AccessPolicy for OnePassword {
    fn password(&self, username: &str, password: &[u8]) -> Verdict {
        if username == "vendor-user" && password == b"letmein" {
            Verdict::Allow
        } else {
            Verdict::Abstain
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_no_policy_claims_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tokio::task::block_in_place(|| testkit::Pki::generate(dir.path()));
    let mut setup = BrokerSetup::new(pki.ca_cert(), pki.server_cert(), pki.server_key());
    setup.own_certificates = vec!["ours".into()];
    setup.users = HashMap::from([("edgewire".to_owned(), "devpw".to_owned())]);
    setup.policies = vec![Arc::new(OnePassword) as Arc<dyn AccessPolicy>];
    let broker = EmbeddedBroker::start(setup).await.unwrap();
    let ep = broker.endpoints().clone();
    let mtls = |cn: &str| {
        let c = pki.client(cn);
        let mut o = SessionOptions::new(ep.mtls.parse().unwrap());
        o.tls.ca_files = vec![pki.ca_cert()];
        o.tls.client_cert = Some(c.cert);
        o.tls.client_key = Some(c.key);
        o.client_id = format!("client-{cn}");
        o.connect_timeout = Duration::from_secs(5);
        o
    };
    // Signed by the broker's own CA, but neither iot-sim's nor claimed by a vendor's rules.
    let ours = tokio::task::block_in_place(|| mtls("ours"));
    let stranger = tokio::task::block_in_place(|| mtls("stranger"));
    connect(ours).await.expect("an own certificate is admitted");
    assert_eq!(refused_code(connect(stranger).await), 5, "not authorized");
    let pw = |user: &str, pass: &str| {
        let mut o = SessionOptions::new(ep.tls_password.parse().unwrap());
        o.tls.ca_files = vec![pki.ca_cert()];
        o.client_id = format!("pw-{user}");
        o.connect_timeout = Duration::from_secs(5);
        with_creds(o, user, pass)
    };
    connect(pw("edgewire", "devpw"))
        .await
        .expect("a configured user is admitted");
    connect(pw("vendor-user", "letmein"))
        .await
        .expect("a user whose password a policy accepted is admitted");
    assert_eq!(refused_code(connect(pw("nobody", "letmein")).await), 4);
    broker.stop().await;
}
