//! Username and password for the CONNECT packet, and secrets in general. A password or token
//! comes from an environment variable or a file, never from a flag (flags are visible in `ps`),
//! and is held as a [`Secret`], whose `Debug` never shows it: it cannot end up in a log line or
//! an error by accident. A file holding a secret that others can read draws a warning naming the
//! file and the `chmod 600` that fixes it.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use secrecy::ExposeSecret;

/// A password, token or key: `Debug` shows `[REDACTED]`; the value only through
/// [`ExposeSecret::expose_secret`], at the one place that sends it.
pub type Secret = secrecy::SecretString;

/// Where the password is read from.
#[derive(Clone)]
pub enum PasswordSource {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file, with one trailing newline removed.
    File(PathBuf),
    /// A value already in hand (from a vendor config file or a token exchange).
    Value(Secret),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(name) => write!(f, "Env({name})"),
            PasswordSource::File(path) => write!(f, "File({})", path.display()),
            PasswordSource::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// Why a password could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The variable is not set or empty.
    #[error("environment variable `{0}` (named by --password-env) is not set or is empty")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read the password file `{path}`: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The file is empty.
    #[error("the password file `{0}` is empty")]
    EmptyFile(PathBuf),
}

/// A username and an optional password, resolved.
#[derive(Clone)]
pub struct Credentials {
    /// MQTT username.
    pub username: String,
    /// MQTT password, if any.
    pub password: Option<Secret>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PasswordSource {
    /// Reads the secret now.
    pub fn read(&self) -> Result<Secret, AuthError> {
        match self {
            PasswordSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v.into()),
                _ => Err(AuthError::EnvMissing(name.clone())),
            },
            PasswordSource::File(path) => read_secret_file(path),
            PasswordSource::Value(v) => Ok(v.clone()),
        }
    }
}

/// The warning for a file holding a secret (`what`: "password file", "private key", "env
/// file with the API key") that its group or others may read; `None` when it is private or
/// cannot be looked at.
pub fn secret_file_warning(path: &Path, what: &str) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    mode_warning(path, what, mode)
}

fn mode_warning(path: &Path, what: &str, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "{what} `{}` is readable by group or others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

/// Logs [`secret_file_warning`], if any.
pub fn warn_if_readable(path: &Path, what: &str) {
    if let Some(w) = secret_file_warning(path, what) {
        tracing::warn!("{w}");
    }
}

/// Writes a file that holds a secret: created with mode 0600 (an existing file is set to 0600
/// before it is written), synced, replacing the old one atomically.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp-edgewire");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn read_secret_file(path: &Path) -> Result<Secret, AuthError> {
    warn_if_readable(path, "password file");
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let secret = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |s| s.strip_suffix('\r').unwrap_or(s));
    if secret.is_empty() {
        return Err(AuthError::EmptyFile(path.to_owned()));
    }
    Ok(secret.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret \n").unwrap();
        assert_eq!(
            PasswordSource::File(p.clone())
                .read()
                .unwrap()
                .expose_secret(),
            "s3cret "
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            PasswordSource::File(p).read(),
            Err(AuthError::EmptyFile(_))
        ));
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = PasswordSource::Env("EDGEWIRE_TEST_SURELY_UNSET_VAR".into())
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("EDGEWIRE_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn readable_secret_files_are_named_with_the_fix() {
        let p = Path::new("/etc/agent/api.env");
        let w = mode_warning(p, "env file", 0o100_644).unwrap();
        assert!(
            w.contains("`/etc/agent/api.env`") && w.contains("chmod 600"),
            "{w}"
        );
        assert_eq!(mode_warning(p, "env file", 0o100_600), None);
        assert_eq!(mode_warning(p, "env file", 0o100_400), None);
    }

    #[test]
    fn secret_files_are_written_private_even_over_a_public_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials {
            username: "u".into(),
            password: Some("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let s: Secret = "hunter2".into();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", PasswordSource::Value("hunter2".into())).contains("hunter2"));
    }
}
