//! The development PKI `iot-sim certs` writes: a root CA, a server certificate for
//! `localhost`/`127.0.0.1`/`::1`, and client certificates with the common names each vendor's
//! agent is known by. Keys are written 0600. Running it again reuses what is there and issues
//! only missing client certificates; a folder with certificates that are not ours is refused.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Marks a folder as holding an edgewire development PKI (so it may be extended, never overwritten).
pub const MARKER: &str = ".edgewire-dev-pki";
const CA_CN: &str = "edgewire development CA";

/// Why the PKI could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertsError {
    /// File system.
    #[error("cannot {op} `{path}`: {source}")]
    Io {
        /// What we did.
        op: &'static str,
        /// File or folder.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Someone else's certificates are there.
    #[error(
        "`{0}` already holds certificates that `iot-sim certs` did not make (no {MARKER} file); \
         refusing to overwrite them. Use another --dir, or move those files away"
    )]
    NotOurs(PathBuf),
    /// rcgen failed.
    #[error("generating {what} failed: {reason}")]
    Generate {
        /// Which certificate.
        what: String,
        /// rcgen's message.
        reason: String,
    },
    /// A common name that cannot be a file name.
    #[error("client name `{0}` must be letters, digits, `-`, `_` or `.` (it becomes a file name)")]
    BadName(String),
}

/// A certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertPair {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (0600).
    pub key: PathBuf,
}

/// The files of a development PKI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DevPki {
    /// Folder.
    pub dir: PathBuf,
    /// Root CA certificate (trust this).
    pub ca: PathBuf,
    /// Broker and HTTPS server identity.
    pub server: CertPair,
    /// Client identities by common name.
    pub clients: Vec<(String, CertPair)>,
}

impl DevPki {
    /// The client pair for `cn`, if issued.
    pub fn client(&self, cn: &str) -> Option<&CertPair> {
        self.clients.iter().find(|(n, _)| n == cn).map(|(_, p)| p)
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + use<> {
    let path = path.to_owned();
    move |source| CertsError::Io { op, path, source }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> CertsError + '_ {
    move |e| CertsError::Generate {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::days(1),
        now + time::Duration::days(825),
    )
}

fn ca_params() -> Result<CertificateParams, CertsError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, CA_CN);
    p.distinguished_name
        .push(DnType::OrganizationName, "edgewire iot-sim");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

fn write_private(path: &Path, pem: &str) -> Result<(), CertsError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(io("chmod 600", path))?;
    f.write_all(pem.as_bytes()).map_err(io("write", path))
}

fn write_public(path: &Path, pem: &str) -> Result<(), CertsError> {
    fs::write(path, pem).map_err(io("write", path))
}

/// Makes sure `dir` holds a development PKI with client certificates for `client_names`.
pub fn ensure(dir: &Path, client_names: &[String]) -> Result<DevPki, CertsError> {
    for name in client_names {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name.starts_with('.')
        {
            return Err(CertsError::BadName(name.clone()));
        }
    }
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create", dir))?;
    }
    let marker = dir.join(MARKER);
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let ours = marker.exists();
    let foreign = ["ca.pem", "ca.key", "server.pem", "server.key"]
        .iter()
        .any(|f| dir.join(f).exists());
    if foreign && !ours {
        return Err(CertsError::NotOurs(dir.to_owned()));
    }
    let (not_before, not_after) = validity();
    let issuer = if ours && ca_path.exists() && ca_key_path.exists() {
        let pem = fs::read_to_string(&ca_key_path).map_err(io("read", &ca_key_path))?;
        let key = KeyPair::from_pem(&pem).map_err(gen_err("the CA key (reading ca.key)"))?;
        Issuer::new(ca_params()?, key)
    } else {
        let mut params = ca_params()?;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
        let cert = params.self_signed(&key).map_err(gen_err("the CA"))?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_public(&ca_path, &cert.pem())?;
        write_public(
            &marker,
            "Made by `iot-sim certs`: a development PKI, not for production.\n",
        )?;
        // A new CA invalidates every certificate it did not sign.
        for entry in fs::read_dir(dir).map_err(io("list", dir))? {
            let path = entry.map_err(io("list", dir))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            if (ext == "pem" || ext == "key") && name != "ca.pem" && name != "ca.key" {
                fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        Issuer::new(ca_params()?, key)
    };
    let server = CertPair {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    if !server.cert.exists() || !server.key.exists() {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(gen_err("the server certificate"))?;
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = not_before;
        p.not_after = not_after;
        let key = KeyPair::generate().map_err(gen_err("the server key"))?;
        let cert = p
            .signed_by(&key, &issuer)
            .map_err(gen_err("the server certificate"))?;
        write_private(&server.key, &key.serialize_pem())?;
        write_public(&server.cert, &cert.pem())?;
    }
    let mut clients = Vec::new();
    for cn in client_names {
        let pair = CertPair {
            cert: dir.join(format!("{cn}.pem")),
            key: dir.join(format!("{cn}.key")),
        };
        if !pair.cert.exists() || !pair.key.exists() {
            let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen_err(cn))?;
            p.distinguished_name.push(DnType::CommonName, cn.as_str());
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p.use_authority_key_identifier_extension = true;
            p.not_before = not_before;
            p.not_after = not_after;
            let key = KeyPair::generate().map_err(gen_err(cn))?;
            let cert = p.signed_by(&key, &issuer).map_err(gen_err(cn))?;
            write_private(&pair.key, &key.serialize_pem())?;
            write_public(&pair.cert, &cert.pem())?;
        }
        clients.push((cn.clone(), pair));
    }
    Ok(DevPki {
        dir: dir.to_owned(),
        ca: ca_path,
        server,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn issues_keys_0600_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("agent_cert");
        let first = ensure(&d, &["dev-a".into()]).unwrap();
        assert_eq!(
            fs::metadata(&first.server.key).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&first.client("dev-a").unwrap().key)
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        let ca_before = fs::read(&first.ca).unwrap();
        let key_before = fs::read(&first.client("dev-a").unwrap().key).unwrap();
        let second = ensure(&d, &["dev-a".into(), "dev-b".into()]).unwrap();
        assert_eq!(fs::read(&second.ca).unwrap(), ca_before, "the CA is reused");
        assert_eq!(
            fs::read(&second.client("dev-a").unwrap().key).unwrap(),
            key_before,
            "existing clients are kept"
        );
        assert!(
            second.client("dev-b").unwrap().cert.exists(),
            "missing clients are issued"
        );
        let cn =
            transport::tls::common_name_of_file(&second.client("dev-b").unwrap().cert).unwrap();
        assert_eq!(cn.as_deref(), Some("dev-b"));
    }

    #[test]
    fn refuses_a_folder_with_foreign_certificates() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ca.pem"), "someone else's CA").unwrap();
        let err = ensure(dir.path(), &[]).unwrap_err();
        assert!(matches!(err, CertsError::NotOurs(_)), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
            "someone else's CA"
        );
    }

    #[test]
    fn refuses_names_that_are_not_file_names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ensure(dir.path(), &["../x".into()]),
            Err(CertsError::BadName(_))
        ));
    }
}
