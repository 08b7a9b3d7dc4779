//! The throwaway PKI: a fresh root CA per [`Pki`] (so a second `Pki` is a
//! "wrong CA"), a server certificate for `localhost`/`127.0.0.1`/`::1`, and
//! client certificates issued on demand, including expired ones and keys in
//! the other PEM encodings (SEC1, PKCS#1) for key-loader tests. Certificates
//! are made with rcgen; the encoding conversions and the RSA key use the
//! `openssl` CLI. Every private key file is written with mode 0600.

use std::fmt;
use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::process::unique_token;

/// A throwaway PKI in a directory: root CA, server certificate for
/// `localhost` + `127.0.0.1` + `::1`, and client certificates issued on demand.
///
/// Files in [`Pki::dir`]: `ca.pem`, `ca.key`, `server.pem`, `server.key`, and
/// per client CN: `<cn>.pem`/`<cn>.key` (PKCS#8), `<cn>.sec1.key` (same key
/// and certificate, SEC1 encoding), `<cn>.rsa.pem`/`<cn>.rsa.key` (RSA-2048,
/// PKCS#1) and `<cn>.expired.pem`/`<cn>.expired.key`.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// Serialises issuance so concurrent `client(cn)` calls issue once.
    issuing: Mutex<()>,
}

/// Paths of a client certificate (PEM) and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The client certificate, PEM.
    pub cert: PathBuf,
    /// The client private key, PEM, mode 0600.
    pub key: PathBuf,
}

/// Encoding of a client private key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFormat {
    /// ECDSA P-256 key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    Pkcs8,
    /// ECDSA P-256 key as SEC1 (`-----BEGIN EC PRIVATE KEY-----`).
    Sec1,
    /// RSA-2048 key as PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`); its
    /// certificate is a separate one (`<cn>.rsa.pem`) since the key differs.
    Pkcs1,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates `dir` if needed and writes a new root CA (`ca.pem`, `ca.key`)
    /// and a server certificate (`server.pem`, `server.key`) into it.
    pub fn generate(dir: &Path) -> Pki {
        fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("testkit: cannot create PKI dir {}: {e}", dir.display()));

        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("testkit: empty SAN list is valid");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("edgewire testkit CA {}", unique_token()),
        );
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "edgewire testkit");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (not_before, not_after) = validity(-1, 365);
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca_key = new_key("CA");
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("testkit: self-signing the CA failed: {e}"));
        write_private(&dir.join("ca.key"), &ca_key.serialize_pem());
        write_public(&dir.join("ca.pem"), &ca_cert.pem());

        let pki = Pki {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(ca_params, ca_key),
            issuing: Mutex::new(()),
        };

        let mut server = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("testkit: \"localhost\" is a valid DNS SAN");
        server
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.use_authority_key_identifier_extension = true;
        server.not_before = not_before;
        server.not_after = not_after;
        let server_key = new_key("server");
        let server_cert = server
            .signed_by(&server_key, &pki.issuer)
            .unwrap_or_else(|e| panic!("testkit: signing the server certificate failed: {e}"));
        write_private(&pki.server_key(), &server_key.serialize_pem());
        write_public(&pki.server_cert(), &server_cert.pem());
        pki
    }

    /// The directory holding all PEM files of this PKI.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PEM path of the root CA certificate (`ca.pem`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// PEM path of the server certificate (`server.pem`), valid for
    /// `localhost`, `127.0.0.1` and `::1`.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// PEM path of the server private key (`server.key`, PKCS#8).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Issues (or returns the already issued) client certificate with
    /// CN = `cn`, signed by this CA: `<cn>.pem` and `<cn>.key` (PKCS#8, ECDSA
    /// P-256). `cn` must be usable as a file name (no `/`, no leading `.`).
    pub fn client(&self, cn: &str) -> ClientCert {
        check_cn(cn);
        let _guard = self.issuing.lock().unwrap_or_else(PoisonError::into_inner);
        self.issue_ec(cn, "", validity(-1, 365))
    }

    /// Like [`Pki::client`] but with the key in another encoding:
    /// [`KeyFormat::Pkcs8`] is exactly `client(cn)`; [`KeyFormat::Sec1`] is the
    /// same certificate with the key re-encoded as SEC1 (`<cn>.sec1.key`);
    /// [`KeyFormat::Pkcs1`] is a separate RSA-2048 certificate with the same
    /// CN (`<cn>.rsa.pem`, `<cn>.rsa.key`).
    pub fn client_with_key_format(&self, cn: &str, fmt: KeyFormat) -> ClientCert {
        match fmt {
            KeyFormat::Pkcs8 => self.client(cn),
            KeyFormat::Sec1 => {
                let base = self.client(cn);
                let _guard = self.issuing.lock().unwrap_or_else(PoisonError::into_inner);
                let key = self.dir.join(format!("{cn}.sec1.key"));
                if !key.exists() {
                    let pkcs8 = fs::read(&base.key).unwrap_or_else(|e| {
                        panic!("testkit: cannot read {}: {e}", base.key.display())
                    });
                    let sec1 = openssl(&["pkey", "-traditional"], &pkcs8);
                    expect_pem(&sec1, "EC PRIVATE KEY", "openssl pkey -traditional (EC)");
                    write_private(&key, &sec1);
                }
                ClientCert {
                    cert: base.cert,
                    key,
                }
            }
            KeyFormat::Pkcs1 => {
                check_cn(cn);
                let _guard = self.issuing.lock().unwrap_or_else(PoisonError::into_inner);
                self.issue_rsa(cn)
            }
        }
    }

    /// An expired client certificate (valid from 30 days ago until yesterday)
    /// with CN = `cn`, signed by this CA: `<cn>.expired.pem`,
    /// `<cn>.expired.key` (PKCS#8).
    pub fn expired_client(&self, cn: &str) -> ClientCert {
        check_cn(cn);
        let _guard = self.issuing.lock().unwrap_or_else(PoisonError::into_inner);
        self.issue_ec(cn, ".expired", validity(-30, -1))
    }

    fn paths(&self, cn: &str, suffix: &str) -> ClientCert {
        ClientCert {
            cert: self.dir.join(format!("{cn}{suffix}.pem")),
            key: self.dir.join(format!("{cn}{suffix}.key")),
        }
    }

    fn issue_ec(
        &self,
        cn: &str,
        suffix: &str,
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    ) -> ClientCert {
        let out = self.paths(cn, suffix);
        if out.cert.exists() && out.key.exists() {
            return out;
        }
        let key = new_key(cn);
        let cert = client_params(cn, not_before, not_after)
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("testkit: signing client certificate {cn:?} failed: {e}"));
        write_private(&out.key, &key.serialize_pem());
        write_public(&out.cert, &cert.pem());
        out
    }

    fn issue_rsa(&self, cn: &str) -> ClientCert {
        let out = self.paths(cn, ".rsa");
        if out.cert.exists() && out.key.exists() {
            return out;
        }
        // rcgen with ring cannot generate RSA keys, but it can sign a
        // certificate for an RSA key it is given as PKCS#8.
        let pkcs8 = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            b"",
        );
        expect_pem(&pkcs8, "PRIVATE KEY", "openssl genpkey -algorithm RSA");
        let key = KeyPair::from_pem(&pkcs8)
            .unwrap_or_else(|e| panic!("testkit: rcgen cannot load the RSA key from openssl: {e}"));
        let (not_before, not_after) = validity(-1, 365);
        let cert = client_params(cn, not_before, not_after)
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| {
                panic!("testkit: signing RSA client certificate {cn:?} failed: {e}")
            });
        let pkcs1 = openssl(&["pkey", "-traditional"], pkcs8.as_bytes());
        expect_pem(&pkcs1, "RSA PRIVATE KEY", "openssl pkey -traditional (RSA)");
        write_private(&out.key, &pkcs1);
        write_public(&out.cert, &cert.pem());
        out
    }
}

fn check_cn(cn: &str) {
    assert!(
        !cn.is_empty() && !cn.contains(['/', '\0']) && !cn.starts_with('.'),
        "testkit: client CN {cn:?} is not usable as a file name (empty, contains '/' or starts with '.')"
    );
}

fn client_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).expect("testkit: empty SAN list is valid");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

/// (now + `from_days` days, now + `to_days` days).
fn validity(from_days: i64, to_days: i64) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        now + Duration::days(from_days),
        now + Duration::days(to_days),
    )
}

fn new_key(what: &str) -> KeyPair {
    KeyPair::generate()
        .unwrap_or_else(|e| panic!("testkit: generating the {what} key pair failed: {e}"))
}

/// Writes a private key with mode 0600 (also when the file already existed).
fn write_private(path: &Path, pem: &str) {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("testkit: cannot create key file {}: {e}", path.display()));
    fs::set_permissions(path, Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("testkit: cannot chmod 0600 {}: {e}", path.display()));
    file.write_all(pem.as_bytes())
        .unwrap_or_else(|e| panic!("testkit: cannot write key file {}: {e}", path.display()));
}

fn write_public(path: &Path, pem: &str) {
    fs::write(path, pem)
        .unwrap_or_else(|e| panic!("testkit: cannot write {}: {e}", path.display()));
}

fn expect_pem(pem: &str, label: &str, what: &str) {
    assert!(
        pem.starts_with(&format!("-----BEGIN {label}-----")),
        "testkit: `{what}` did not produce a \"BEGIN {label}\" PEM; got:\n{}",
        pem.lines().next().unwrap_or("<empty>")
    );
}

/// Runs the `openssl` CLI with `stdin` as input and returns its stdout.
fn openssl(args: &[&str], stdin: &[u8]) -> String {
    let shown = format!("openssl {}", args.join(" "));
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("testkit: cannot run `{shown}` (is the openssl CLI installed?): {e}")
        });
    {
        // Inputs are a few KiB, well below the pipe buffer, so writing
        // everything before reading cannot deadlock.
        let mut input = child.stdin.take().expect("testkit: stdin was piped");
        input
            .write_all(stdin)
            .unwrap_or_else(|e| panic!("testkit: writing to `{shown}` failed: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("testkit: waiting for `{shown}` failed: {e}"));
    assert!(
        out.status.success(),
        "testkit: `{shown}` failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("testkit: `{shown}` printed non-UTF-8: {e}"))
}
