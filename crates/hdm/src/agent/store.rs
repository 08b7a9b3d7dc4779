//! The certificate store on disk: loading a provisioned identity of any generation (every file
//! checked, errors naming the folder and the file; a store the Python client wrote is read as it
//! is, without a network call) and writing what provisioning returns. Every write is atomic (a
//! temporary file in the same folder, synced, renamed over the target, folder synced); keys and
//! tokens are written 0600 and the folder is created 0700. The private key is written last,
//! since its presence means "provisioned".

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::protocol::directory::Progress;
use crate::protocol::oauth::StoredToken;
use crate::protocol::store::{
    CLIENT_ID, CLIENT_ID_README, DEVICE_CERT, DIRECTORY, OAUTH_TOKEN, ORG_ID, ORG_ID_README,
    PRIVATE_KEY, PROPERTIES, PUBLIC_KEY, Properties, ROOT_CA, StoreLayout, has_pem,
    has_private_key, parse_client_id, parse_org_id,
};
use crate::protocol::topics::TopicError;
use transport::auth::{ExposeSecret, Secret};

/// What is wrong with the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No identity yet.
    #[error(
        "certificate store `{dir}` holds no {PRIVATE_KEY}: this device is not provisioned; run `hdm-telemetry provision` (or pass --store with the right folder)"
    )]
    NotProvisioned {
        /// Folder.
        dir: PathBuf,
    },
    /// A file of a provisioned store is missing.
    #[error("certificate store `{dir}` lacks `{file}`: {hint}")]
    Missing {
        /// Folder.
        dir: PathBuf,
        /// File.
        file: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// A file has the wrong content.
    #[error("`{path}` {problem}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The thing name in the client id file.
    #[error("`{path}`: {source}")]
    ClientId {
        /// File.
        path: PathBuf,
        /// What is wrong.
        source: TopicError,
    },
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
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::Io { op, path, source }
}

/// A provisioned identity: the files TLS needs and the thing name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The store folder.
    pub dir: PathBuf,
    /// Thing name (MQTT client id).
    pub thing: String,
    /// `amazonRootCA1.pem`.
    pub root_ca: PathBuf,
    /// `deviceCert.cert`.
    pub cert: PathBuf,
    /// `devicePrivateKey.pem`.
    pub key: PathBuf,
    /// The organisation (gen 2+: `OrgID.txt` or `properties.json`).
    pub org_id: Option<String>,
    /// `properties.json`, when provisioning wrote one.
    pub properties: Option<Properties>,
}

/// What provisioning hands over for storing.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    /// Thing name.
    pub client_id: String,
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM private key.
    pub private_key_pem: Secret,
    /// PEM public key, when known.
    pub public_key_pem: Option<String>,
    /// The organisation (gen 2+), written to `OrgID.txt`.
    pub org_id: Option<String>,
}

/// A certificate store folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    layout: StoreLayout,
}

impl Store {
    /// The store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store {
            layout: StoreLayout::new(dir),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }

    /// Whether an identity is stored (the private key exists).
    pub fn is_provisioned(&self) -> bool {
        self.layout.file(PRIVATE_KEY).exists()
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir())
            .map_err(io("create", self.dir()))
    }

    fn write(&self, name: &str, data: &[u8], mode: u32) -> Result<PathBuf, StoreError> {
        self.ensure_dir()?;
        let path = self.layout.file(name);
        write_atomic(&path, data, mode)?;
        Ok(path)
    }

    /// Writes the broker's root CA (every provisioning run, like the reference client).
    pub fn write_root_ca(&self, pem: &str) -> Result<PathBuf, StoreError> {
        self.write(ROOT_CA, pem.as_bytes(), 0o644)
    }

    fn write_secret(&self, name: &str, data: &[u8]) -> Result<PathBuf, StoreError> {
        self.ensure_dir()?;
        let path = self.layout.file(name);
        transport::auth::write_secret_file(&path, data).map_err(io("write", &path))?;
        Ok(path)
    }

    /// Writes `properties.json`.
    pub fn write_properties(&self, p: &Properties) -> Result<PathBuf, StoreError> {
        let json = serde_json::to_vec_pretty(p).unwrap_or_default();
        self.write(PROPERTIES, &json, 0o644)
    }

    /// Writes a new identity: certificate, client id, org id, public key, then the private key.
    pub fn write_identity(&self, id: &NewIdentity) -> Result<(), StoreError> {
        self.write(DEVICE_CERT, id.cert_pem.as_bytes(), 0o644)?;
        self.write(CLIENT_ID, id.client_id.as_bytes(), 0o644)?;
        if let Some(o) = &id.org_id {
            self.write(ORG_ID, o.as_bytes(), 0o644)?;
        }
        if let Some(p) = &id.public_key_pem {
            self.write_secret(PUBLIC_KEY, p.as_bytes())?;
        }
        self.write_secret(PRIVATE_KEY, id.private_key_pem.expose_secret().as_bytes())?;
        Ok(())
    }

    fn properties(&self) -> Result<Option<Properties>, StoreError> {
        let path = self.layout.file(PROPERTIES);
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read(&path).map_err(io("read", &path))?;
        serde_json::from_slice::<Properties>(&text)
            .map(Some)
            .map_err(|e| StoreError::Invalid {
                path,
                problem: format!(
                    "is not valid: {e} (expected {{\"mqtt_endpoint\": HOST, \"mqtt_port\": PORT, ...}})"
                ),
            })
    }

    fn first_existing(&self, names: &[&str]) -> Option<PathBuf> {
        names
            .iter()
            .map(|n| self.layout.file(n))
            .find(|p| p.exists())
    }

    /// The thing name from `ClientID.txt` (or the README's `clientID.txt`, or a gen-3
    /// `properties.json`'s `client_id`).
    pub fn client_id(&self) -> Result<String, StoreError> {
        if let Some(path) = self.first_existing(&[CLIENT_ID, CLIENT_ID_README]) {
            let text = fs::read_to_string(&path).map_err(io("read", &path))?;
            return parse_client_id(&text).map_err(|source| StoreError::ClientId { path, source });
        }
        if let Some(id) = self.properties()?.and_then(|p| p.client_id) {
            let path = self.layout.file(PROPERTIES);
            return parse_client_id(&id).map_err(|source| StoreError::ClientId { path, source });
        }
        Err(StoreError::Missing {
            dir: self.dir().to_owned(),
            file: CLIENT_ID,
            hint: "it holds the thing name (or `client_id` in properties.json); provision again with --force",
        })
    }

    /// The organisation from `OrgID.txt` (or the README's `OrgId.txt`, or `properties.json`).
    pub fn org_id(&self) -> Result<Option<String>, StoreError> {
        if let Some(path) = self.first_existing(&[ORG_ID, ORG_ID_README]) {
            let text = fs::read_to_string(&path).map_err(io("read", &path))?;
            return parse_org_id(&text)
                .map(Some)
                .map_err(|source| StoreError::ClientId { path, source });
        }
        match self.properties()?.and_then(|p| p.org_id) {
            Some(o) => parse_org_id(&o)
                .map(Some)
                .map_err(|source| StoreError::ClientId {
                    path: self.layout.file(PROPERTIES),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// The stored OAuth tokens (gen 3), if any; a broken file counts as none (it is replaced
    /// after the next authorization) but is warned about.
    pub fn token(&self) -> Option<StoredToken> {
        let path = self.layout.file(OAUTH_TOKEN);
        let bytes = fs::read(&path).ok()?;
        transport::auth::warn_if_readable(&path, "OAuth token file");
        match StoredToken::decode(&bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("{}: {e}; authorizing again", path.display());
                None
            }
        }
    }

    /// Stores the OAuth tokens (0600).
    pub fn write_token(&self, t: &StoredToken) -> Result<PathBuf, StoreError> {
        self.write_secret(OAUTH_TOKEN, &t.encode())
    }

    /// The directory steps done so far (gen 3).
    pub fn directory(&self) -> Result<Progress, StoreError> {
        let path = self.layout.file(DIRECTORY);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Invalid {
                path,
                problem: format!("is not valid: {e}; delete it to register the machine again"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Remembers the directory steps done so far.
    pub fn write_directory(&self, p: &Progress) -> Result<PathBuf, StoreError> {
        let json = serde_json::to_vec_pretty(p).unwrap_or_default();
        self.write(DIRECTORY, &json, 0o644)
    }

    fn existing(&self, name: &'static str, hint: &'static str) -> Result<PathBuf, StoreError> {
        let path = self.layout.file(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(StoreError::Missing {
                dir: self.dir().to_owned(),
                file: name,
                hint,
            })
        }
    }

    fn check_pem(path: &Path, ok: fn(&str) -> bool, what: &str) -> Result<(), StoreError> {
        let text = fs::read_to_string(path).map_err(io("read", path))?;
        if ok(&text) {
            Ok(())
        } else {
            Err(StoreError::Invalid {
                path: path.to_owned(),
                problem: format!("does not hold {what}"),
            })
        }
    }

    /// Loads and checks a provisioned identity.
    pub fn load(&self) -> Result<Provisioned, StoreError> {
        if !self.dir().is_dir() || !self.is_provisioned() {
            return Err(StoreError::NotProvisioned {
                dir: self.dir().to_owned(),
            });
        }
        let key = self.layout.file(PRIVATE_KEY);
        let cert = self.existing(
            DEVICE_CERT,
            "the device certificate; provision again with --force",
        )?;
        let root_ca = self.existing(
            ROOT_CA,
            "the broker's root CA; run `hdm-telemetry provision` to fetch it",
        )?;
        let thing = self.client_id()?;
        let org_id = self.org_id()?;
        Self::check_pem(&key, has_private_key, "a PEM private key")?;
        Self::check_pem(&cert, |t| has_pem(t, "CERTIFICATE"), "a PEM certificate")?;
        Self::check_pem(&root_ca, |t| has_pem(t, "CERTIFICATE"), "a PEM certificate")?;
        transport::auth::warn_if_readable(&key, "private key");
        Ok(Provisioned {
            dir: self.dir().to_owned(),
            thing,
            root_ca,
            cert,
            key,
            org_id,
            properties: self.properties()?,
        })
    }
}

/// Writes `data` to `path` atomically with `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(data).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("replace", path))?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n";

    fn identity() -> NewIdentity {
        NewIdentity {
            client_id: "hdm-1".into(),
            cert_pem: CERT.into(),
            private_key_pem: KEY.into(),
            public_key_pem: Some("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n".into()),
            org_id: None,
        }
    }

    #[test]
    fn python_stores_of_every_generation_load_without_the_network() {
        // gen 1: the five files (README spelling of the client id file).
        let dir = tempfile::tempdir().unwrap();
        for (f, c) in [
            (ROOT_CA, CERT),
            (CLIENT_ID_README, "thing-1\n"),
            (DEVICE_CERT, CERT),
            (PRIVATE_KEY, KEY),
            (
                PUBLIC_KEY,
                "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
            ),
        ] {
            fs::write(dir.path().join(f), c).unwrap();
        }
        let p = Store::new(dir.path()).load().unwrap();
        assert_eq!(
            (p.thing.as_str(), p.org_id.as_deref(), p.properties),
            ("thing-1", None, None)
        );
        // gen 2: plus OrgID.txt (README spelling OrgId.txt).
        fs::write(dir.path().join(ORG_ID_README), "org-7").unwrap();
        assert_eq!(
            Store::new(dir.path()).load().unwrap().org_id.as_deref(),
            Some("org-7")
        );
        // gen 3: only the CA, the key, the certificate and properties.json.
        let dir = tempfile::tempdir().unwrap();
        for (f, c) in [(ROOT_CA, CERT), (DEVICE_CERT, CERT), (PRIVATE_KEY, KEY)] {
            fs::write(dir.path().join(f), c).unwrap();
        }
        fs::write(
            dir.path().join(PROPERTIES),
            r#"{"mqtt_endpoint": "a-ats.iot.eu-west-1.amazonaws.com", "mqtt_port": 8883, "machine_region": "eu-west-1", "telemetry_topic": "$aws/rules/iot_data_platform_telemetry_stg", "client_id": "c-9", "org_id": "o-9", "machine_id": "m-9", "site_id": "s-9"}"#,
        )
        .unwrap();
        let p = Store::new(dir.path()).load().unwrap();
        assert_eq!(
            (p.thing.as_str(), p.org_id.as_deref()),
            ("c-9", Some("o-9"))
        );
        assert_eq!(p.properties.unwrap().site_id.as_deref(), Some("s-9"));
    }

    #[test]
    fn tokens_are_written_private_and_directory_progress_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("cs"));
        assert!(store.token().is_none());
        let t = StoredToken {
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at: Some(10),
            directory_host: "https://d".into(),
            client_id: "c".into(),
        };
        let path = store.write_token(&t).unwrap();
        let m = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600);
        assert_eq!(
            store
                .token()
                .unwrap()
                .refresh_token
                .unwrap()
                .expose_secret(),
            "rt"
        );
        let mut p = store.directory().unwrap();
        assert_eq!(p, Progress::default());
        p.site_id = Some("s".into());
        store.write_directory(&p).unwrap();
        assert_eq!(store.directory().unwrap(), p);
        fs::write(dir.path().join("cs").join(DIRECTORY), "{").unwrap();
        assert!(
            store
                .directory()
                .unwrap_err()
                .to_string()
                .contains(DIRECTORY)
        );
    }

    #[test]
    fn writes_atomically_with_private_modes_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("certificate_store"));
        assert!(matches!(
            store.load(),
            Err(StoreError::NotProvisioned { .. })
        ));
        store.write_root_ca(CERT).unwrap();
        store.write_identity(&identity()).unwrap();
        let p = store.load().unwrap();
        assert_eq!(p.thing, "hdm-1");
        assert_eq!(p.properties, None);
        for (f, mode) in [(PRIVATE_KEY, 0o600), (PUBLIC_KEY, 0o600)] {
            let m = fs::metadata(store.dir().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, mode, "{f}");
        }
        let m = fs::metadata(store.dir()).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o700);
        let leftovers: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn readme_spelling_of_the_client_id_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.write_root_ca(CERT).unwrap();
        store.write_identity(&identity()).unwrap();
        fs::rename(
            dir.path().join(CLIENT_ID),
            dir.path().join(CLIENT_ID_README),
        )
        .unwrap();
        assert_eq!(store.load().unwrap().thing, "hdm-1");
    }

    #[test]
    fn missing_and_broken_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.write_identity(&identity()).unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains(ROOT_CA) && e.contains("provision"), "{e}");
        store.write_root_ca("not a cert").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains(ROOT_CA) && e.contains("PEM certificate"), "{e}");
        store.write_root_ca(CERT).unwrap();
        fs::write(dir.path().join(CLIENT_ID), "bad/name").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains(CLIENT_ID) && e.contains("bad/name"), "{e}");
        fs::write(dir.path().join(CLIENT_ID), "hdm-1").unwrap();
        fs::write(dir.path().join(PROPERTIES), "{").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains(PROPERTIES), "{e}");
    }
}
