//! `--db-tls`: libpq's four TLS modes and the rule that picks one for a connection. Pure: no
//! I/O; `url` applies the result to the driver's options.
//!
//! The rule: `--db-tls`, else the URL's `sslmode=`/`ssl-mode=`, else `PGSSLMODE`
//! (PostgreSQL), else the default: `verify-full` for a host off this machine, and for this
//! machine (localhost, 127.0.0.0/8, ::1, a unix socket) TLS when the server offers it,
//! unverified, else plaintext (libpq's `prefer`). A mode that can end in plaintext (`disable`,
//! and the URL-only `allow`/`prefer`) is refused for a host off this machine. A flag and a URL
//! that name different modes are refused too: which one the user meant cannot be guessed.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The value of `--db-tls` (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbTls {
    /// Plaintext only (this machine only).
    Disable,
    /// TLS, the certificate not checked (with `--db-cafile`: checked against that CA, as libpq
    /// does when a root certificate is present).
    Require,
    /// TLS, the certificate signed by a trusted CA; the host name not checked.
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and naming the host.
    VerifyFull,
}

impl DbTls {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            DbTls::Disable => "disable",
            DbTls::Require => "require",
            DbTls::VerifyCa => "verify-ca",
            DbTls::VerifyFull => "verify-full",
        }
    }

    /// Every flag value, for help texts.
    pub const NAMES: [&'static str; 4] = ["disable", "require", "verify-ca", "verify-full"];
}

impl fmt::Display for DbTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DbTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match TlsMode::from_str(s)? {
            TlsMode::Disable => Ok(DbTls::Disable),
            TlsMode::Require => Ok(DbTls::Require),
            TlsMode::VerifyCa => Ok(DbTls::VerifyCa),
            TlsMode::VerifyFull => Ok(DbTls::VerifyFull),
            TlsMode::Allow | TlsMode::Prefer => Err(format!(
                "`{s}` is not a --db-tls mode: use disable, require, verify-ca or verify-full \
                 (on this machine the default already uses TLS when the server offers it)"
            )),
        }
    }
}

/// Every mode a connection can end up in: the flag's four plus libpq's `allow`/`prefer` (from a
/// URL, `PGSSLMODE`, or the default for this machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// Plaintext (libpq tries TLS second; sqlx does not).
    Allow,
    /// TLS if the server offers it, unverified; else plaintext.
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, CA checked.
    VerifyCa,
    /// TLS, CA and host name checked.
    VerifyFull,
}

impl TlsMode {
    /// libpq's name.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Allow => "allow",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the connection may carry plaintext.
    pub fn may_be_plaintext(self) -> bool {
        matches!(self, TlsMode::Disable | TlsMode::Allow | TlsMode::Prefer)
    }
}

impl From<DbTls> for TlsMode {
    fn from(t: DbTls) -> Self {
        match t {
            DbTls::Disable => TlsMode::Disable,
            DbTls::Require => TlsMode::Require,
            DbTls::VerifyCa => TlsMode::VerifyCa,
            DbTls::VerifyFull => TlsMode::VerifyFull,
        }
    }
}

impl FromStr for TlsMode {
    type Err = String;

    /// libpq's names, and MySQL's (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`,
    /// `VERIFY_IDENTITY`), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => TlsMode::Disable,
            "allow" => TlsMode::Allow,
            "prefer" | "preferred" => TlsMode::Prefer,
            "require" | "required" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" | "verify-identity" => TlsMode::VerifyFull,
            _ => {
                return Err(format!(
                    "`{s}` is not a TLS mode: use disable, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// Where the mode in effect came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSource {
    /// `--db-tls`.
    Flag,
    /// The URL's parameter, as written (`sslmode=disable`).
    Url(String),
    /// `PGSSLMODE`.
    Env,
    /// Nothing said: the default.
    Default,
}

impl fmt::Display for ModeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeSource::Flag => f.write_str("--db-tls"),
            ModeSource::Url(p) => write!(f, "`{p}` in --db"),
            ModeSource::Env => f.write_str("PGSSLMODE"),
            ModeSource::Default => f.write_str("the default"),
        }
    }
}

/// What the caller knows about one connection.
#[derive(Debug, Clone, Default)]
pub struct TlsInputs {
    /// `--db-tls`.
    pub flag: Option<DbTls>,
    /// The URL's TLS parameter: its value and the `key=value` text.
    pub in_url: Option<(TlsMode, String)>,
    /// `PGSSLMODE` (PostgreSQL only).
    pub env: Option<TlsMode>,
    /// The host, as shown in messages.
    pub host: String,
    /// The host is this machine (or a unix socket).
    pub local: bool,
}

/// Picks the mode for a connection (see the module doc), or says why none fits.
pub fn choose(i: &TlsInputs) -> Result<(TlsMode, ModeSource), String> {
    if let (Some(flag), Some((url_mode, text))) = (i.flag, &i.in_url)
        && TlsMode::from(flag) != *url_mode
    {
        return Err(format!(
            "--db-tls {flag} conflicts with `{text}` in the URL; give the TLS mode once"
        ));
    }
    let (mode, source) = match (i.flag, &i.in_url, i.env) {
        (Some(f), _, _) => (TlsMode::from(f), ModeSource::Flag),
        (None, Some((m, text)), _) => (*m, ModeSource::Url(text.clone())),
        (None, None, Some(m)) => (m, ModeSource::Env),
        (None, None, None) if i.local => (TlsMode::Prefer, ModeSource::Default),
        (None, None, None) => (TlsMode::VerifyFull, ModeSource::Default),
    };
    if mode.may_be_plaintext() && !i.local {
        return Err(format!(
            "{source} says `{}`, which can send the password and the readings unencrypted to \
             `{}`, a host off this machine; plaintext is allowed only to localhost, \
             127.0.0.0/8, ::1 and unix sockets: use --db-tls verify-full (the default), \
             verify-ca or require",
            mode.name(),
            i.host
        ));
    }
    Ok((mode, source))
}

/// Whether `host` is this machine: `localhost`, a loopback address, or a unix socket path.
/// Names are not resolved (a name that happens to resolve to 127.0.1.1 counts as remote).
pub fn is_local(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.is_empty()
        || h.starts_with('/')
        || h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(flag: Option<DbTls>, url: Option<&str>, local: bool) -> TlsInputs {
        TlsInputs {
            flag,
            in_url: url.map(|u| (u.parse().unwrap(), format!("sslmode={u}"))),
            env: None,
            host: if local { "127.0.0.1" } else { "db.example.com" }.into(),
            local,
        }
    }

    #[test]
    fn defaults_verify_off_this_machine_and_prefer_on_it() {
        assert_eq!(
            choose(&inputs(None, None, false)).unwrap(),
            (TlsMode::VerifyFull, ModeSource::Default)
        );
        assert_eq!(
            choose(&inputs(None, None, true)).unwrap(),
            (TlsMode::Prefer, ModeSource::Default)
        );
    }

    #[test]
    fn plaintext_only_to_this_machine() {
        let e = choose(&inputs(Some(DbTls::Disable), None, false)).unwrap_err();
        assert!(
            e.contains("db.example.com") && e.contains("--db-tls"),
            "{e}"
        );
        let e = choose(&inputs(None, Some("prefer"), false)).unwrap_err();
        assert!(e.contains("`sslmode=prefer` in --db"), "{e}");
        assert_eq!(
            choose(&inputs(Some(DbTls::Disable), None, true)).unwrap().0,
            TlsMode::Disable
        );
        let mut env = inputs(None, None, false);
        env.env = Some(TlsMode::Allow);
        assert!(choose(&env).unwrap_err().contains("PGSSLMODE"));
    }

    #[test]
    fn a_flag_and_a_url_must_agree() {
        let e = choose(&inputs(Some(DbTls::VerifyFull), Some("disable"), true)).unwrap_err();
        assert!(e.contains("conflicts with `sslmode=disable`"), "{e}");
        assert_eq!(
            choose(&inputs(Some(DbTls::Require), Some("REQUIRED"), false))
                .unwrap()
                .0,
            TlsMode::Require
        );
        assert_eq!(
            choose(&inputs(None, Some("verify_identity"), false))
                .unwrap()
                .0,
            TlsMode::VerifyFull
        );
    }

    #[test]
    fn flag_values_are_libpqs_four() {
        assert_eq!("verify-ca".parse::<DbTls>().unwrap(), DbTls::VerifyCa);
        assert!("prefer".parse::<DbTls>().is_err());
        assert!(
            "none"
                .parse::<DbTls>()
                .unwrap_err()
                .contains("disable, require")
        );
    }

    #[test]
    fn local_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "/var/run/postgresql",
            "",
        ] {
            assert!(is_local(h), "{h}");
        }
        for h in ["db", "10.0.0.1", "db.example.com", "::2"] {
            assert!(!is_local(h), "{h}");
        }
    }
}
