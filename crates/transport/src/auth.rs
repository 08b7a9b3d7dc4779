//! Username and password for the CONNECT packet. The password (or token) comes from an
//! environment variable or a file, never from a flag, since flags are visible in `ps`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the password is read from.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file, with one trailing newline removed.
    File(PathBuf),
    /// A value already in hand (from a vendor config file or a token exchange).
    Value(String),
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
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// MQTT username.
    pub username: String,
    /// MQTT password, if any.
    pub password: Option<String>,
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
    pub fn read(&self) -> Result<String, AuthError> {
        match self {
            PasswordSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(AuthError::EnvMissing(name.clone())),
            },
            PasswordSource::File(path) => read_secret_file(path),
            PasswordSource::Value(v) => Ok(v.clone()),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, AuthError> {
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
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret \n").unwrap();
        assert_eq!(PasswordSource::File(p.clone()).read().unwrap(), "s3cret ");
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
    fn debug_never_shows_the_secret() {
        let c = Credentials {
            username: "u".into(),
            password: Some("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", PasswordSource::Value("hunter2".into())).contains("hunter2"));
    }
}
