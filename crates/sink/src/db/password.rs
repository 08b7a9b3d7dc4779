//! Where the database password comes from, in order: `--db-password-env NAME`,
//! `--db-password-file FILE`, a password inside `--db` (warned about: the process list and the
//! shell history show it), then the driver's own: `PGPASSWORD` and `~/.pgpass` (or
//! `PGPASSFILE`) for PostgreSQL, `MYSQL_PWD` for MariaDB/MySQL. The value itself never reaches
//! a message; the source's name does (`--db-password-env SINK_PW`), so a failed login says
//! where the wrong password came from.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `--db-password-env` / `--db-password-file` (never a flag value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbPassword {
    /// This environment variable.
    Env(String),
    /// This file (one trailing newline ignored).
    File(PathBuf),
}

impl fmt::Display for DbPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbPassword::Env(v) => write!(f, "--db-password-env {v}"),
            DbPassword::File(p) => write!(f, "--db-password-file {}", p.display()),
        }
    }
}

/// A password and where it came from. `Debug` shows only the source.
#[derive(Clone)]
pub(crate) struct Secret {
    pub value: String,
    pub source: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(from {})", self.source)
    }
}

impl DbPassword {
    /// Reads the password now; a file readable by group or others is used, with a warning.
    pub(crate) fn read(&self) -> Result<Secret, String> {
        let value = match self {
            DbPassword::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!(
                        "environment variable `{var}` (named by --db-password-env) is not set or \
                         is empty"
                    )
                })?,
            DbPassword::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read the database password file `{}`: {e}",
                        path.display()
                    )
                })?;
                if let Some(w) = permission_warning(path, "database password file") {
                    tracing::warn!("{w}");
                }
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                if text.is_empty() {
                    return Err(format!(
                        "the database password file `{}` is empty",
                        path.display()
                    ));
                }
                text.to_owned()
            }
        };
        Ok(Secret {
            value,
            source: self.to_string(),
        })
    }
}

/// A warning naming `path` and the fix when group or others may read it.
pub(crate) fn permission_warning(path: &Path, what: &str) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{what} `{}` is readable by group or others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

/// The warning for a password written into `--db`.
pub(crate) fn url_password_warning(overridden_by: Option<&DbPassword>) -> String {
    let mut w = "the --db URL holds a password: the process list (ps) and the shell history \
                 show it to others; pass it with --db-password-env or --db-password-file, or \
                 use PGPASSWORD or ~/.pgpass (PostgreSQL) or MYSQL_PWD (MariaDB/MySQL)"
        .to_owned();
    if let Some(flag) = overridden_by {
        w.push_str(&format!(" (the URL's password is ignored: {flag} wins)"));
    }
    w
}

/// `~/.pgpass` or `PGPASSFILE`, as libpq and sqlx look for it.
pub(crate) fn pgpass_file() -> Option<PathBuf> {
    std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))
        .filter(|p| p.is_file())
}

/// A non-empty environment variable.
pub(crate) fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lose_one_newline_and_loose_modes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = DbPassword::File(f.clone()).read().unwrap();
        assert_eq!(s.value, "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        let w = permission_warning(&f, "database password file").unwrap();
        assert!(w.contains(&format!("chmod 600 {}", f.display())), "{w}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(permission_warning(&f, "x").is_none());
        std::fs::write(&f, "\n").unwrap();
        assert!(DbPassword::File(f).read().unwrap_err().contains("is empty"));
        let e = DbPassword::Env("EDGEWIRE_SINK_TEST_UNSET_PW".into())
            .read()
            .unwrap_err();
        assert!(e.contains("EDGEWIRE_SINK_TEST_UNSET_PW"), "{e}");
    }
}
