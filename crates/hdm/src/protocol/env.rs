//! The reference client's env files (`env.dev`, `env.stg`, `env.prd`): dotenv lines with the
//! keys `stage`, `base_url`, `api_key`, `api_version` and `loglevel`. Parses text; reading the
//! file is the agent's job. Every error names the file, the line and the key, and never shows
//! a line that may hold the API key.
//!
//! Why not `dotenvy`: every error and every value here carries its line number (dotenvy's
//! iterator yields none, so "line 4: `base_url` must be ..." could not be said); dotenvy
//! substitutes `$NAME` and `${NAME}` from the process environment, which would silently alter
//! an API key containing `$` and make a pure parser read the agent's environment; and its parse
//! error carries the offending line, which may be `api_key VALUE` without its `=`. The format
//! read here is python-dotenv's as the reference client writes it: `key=value`, optional
//! `export `, single or double quotes, `#` comments. That is about forty lines of code.

use std::fmt;

/// The API version gen 1 speaks (`x-api-key` auth).
pub const DEFAULT_API_VERSION: &str = "v2";

/// Keys this client reads.
pub const KNOWN_KEYS: [&str; 5] = ["stage", "base_url", "api_key", "api_version", "loglevel"];

/// The API key: never printed, never in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key, for the `x-api-key` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Log verbosity from `loglevel` (a Python logging level: 10 debug, 20 info, 30 warning, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// 10 or below.
    Debug,
    /// 11 to 20.
    Info,
    /// 21 to 30.
    Warning,
    /// Above 30.
    Error,
}

/// A parsed env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Name of the file, for messages.
    pub file: String,
    /// `stage`: `dev`, `stg`, `prd`; part of the telemetry topic.
    pub stage: Option<(String, usize)>,
    /// `base_url` of the configuration service, without a trailing `/`.
    pub base_url: Option<(String, usize)>,
    /// `api_key` for the `x-api-key` header.
    pub api_key: Option<ApiKey>,
    /// `api_version` (default `v2`).
    pub api_version: Option<(String, usize)>,
    /// `loglevel`.
    pub loglevel: Option<LogLevel>,
    /// Keys this client does not use, with a hint each (shown as warnings).
    pub ignored: Vec<String>,
}

/// What is wrong with an env file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A line that is not `key=value`. The line itself is never shown: it may be
    /// `api_key VALUE` with the `=` missing.
    #[error(
        "{file} line {line}: expected `key=value` (the line is not shown: it may hold the API key)"
    )]
    Syntax {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
    },
    /// A key with a bad value.
    #[error("{file} line {line}: `{key}` must be {expected}, found `{found}`")]
    Value {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was (never the API key).
        found: String,
    },
    /// A key given twice.
    #[error("{file} line {line}: `{key}` is set again (first on line {first})")]
    Duplicate {
        /// File.
        file: String,
        /// 1-based line of the repeat.
        line: usize,
        /// First line.
        first: usize,
        /// Key.
        key: String,
    },
    /// A key the command needs is absent.
    #[error("{file}: no `{key}` (needed {needed_for}); add a line `{key}=...`{hint}")]
    Missing {
        /// File.
        file: String,
        /// Key.
        key: &'static str,
        /// What needs it.
        needed_for: &'static str,
        /// Extra advice.
        hint: &'static str,
    },
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}

fn unquote(raw: &str) -> &str {
    let v = raw.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q)
            && let Some(end) = inner.find(q)
        {
            let rest = inner[end + 1..].trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                return &inner[..end];
            }
        }
    }
    // An unquoted value ends at ` #` (a comment), as in python-dotenv.
    v.find(" #").map_or(v, |i| v[..i].trim_end())
}

fn parse_loglevel(v: &str) -> Option<LogLevel> {
    let n: i64 = match v.to_ascii_uppercase().as_str() {
        "DEBUG" => 10,
        "INFO" => 20,
        "WARNING" | "WARN" => 30,
        "ERROR" => 40,
        "CRITICAL" => 50,
        other => other.parse().ok()?,
    };
    Some(match n {
        i64::MIN..=10 => LogLevel::Debug,
        11..=20 => LogLevel::Info,
        21..=30 => LogLevel::Warning,
        _ => LogLevel::Error,
    })
}

fn valid_base_url(v: &str) -> bool {
    let Ok(u) = url::Url::parse(v) else {
        return false;
    };
    let loopback = matches!(
        u.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        && u.host_str().is_some()
        && u.query().is_none()
        && u.fragment().is_none()
}

fn ignored_hint(key: &str) -> String {
    match key {
        "auth_token" => "`auth_token` is the gen-2 Bearer token; hdm-telemetry speaks the gen-1 API with `api_key` (ignored)".into(),
        k if k.eq_ignore_ascii_case("stage") || k.eq_ignore_ascii_case("api_key") || k.eq_ignore_ascii_case("base_url") => {
            format!("`{k}` is ignored: keys are lower case (`{}`)", k.to_ascii_lowercase())
        }
        k => format!("`{k}` is not used by hdm-telemetry (ignored)"),
    }
}

impl EnvFile {
    /// Parses the text of an env file called `file`.
    pub fn parse(file: &str, text: &str) -> Result<EnvFile, EnvError> {
        let mut env = EnvFile {
            file: file.to_owned(),
            stage: None,
            base_url: None,
            api_key: None,
            api_version: None,
            loglevel: None,
            ignored: Vec::new(),
        };
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
            let syntax = || EnvError::Syntax {
                file: file.to_owned(),
                line,
            };
            let Some((k, v)) = body.split_once('=') else {
                return Err(syntax());
            };
            let key = k.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(syntax());
            }
            if let Some((_, first)) = seen.iter().find(|(s, _)| s == key) {
                return Err(EnvError::Duplicate {
                    file: file.to_owned(),
                    line,
                    first: *first,
                    key: key.to_owned(),
                });
            }
            seen.push((key.to_owned(), line));
            env.set(key, unquote(v), line)?;
        }
        Ok(env)
    }

    fn set(&mut self, key: &str, value: &str, line: usize) -> Result<(), EnvError> {
        let bad = |key: &'static str, expected: &'static str, found: &str| EnvError::Value {
            file: self.file.clone(),
            line,
            key,
            expected,
            found: shorten(found),
        };
        match key {
            "stage" => {
                if crate::protocol::topics::validate_stage(value).is_err() {
                    return Err(bad(
                        "stage",
                        "a stage name of letters, digits, `_` or `-` (dev, stg, prd)",
                        value,
                    ));
                }
                self.stage = Some((value.to_owned(), line));
            }
            "base_url" => {
                if !valid_base_url(value) {
                    return Err(bad(
                        "base_url",
                        "an https:// URL without query, e.g. https://cfg.iot.stg.connectprint.cloud",
                        value,
                    ));
                }
                self.base_url = Some((value.trim_end_matches('/').to_owned(), line));
            }
            "api_key" => {
                if value.is_empty() || value.chars().any(|c| c.is_control() || c == ' ') {
                    return Err(EnvError::Value {
                        file: self.file.clone(),
                        line,
                        key: "api_key",
                        expected: "a non-empty key without spaces",
                        found: "(not shown)".into(),
                    });
                }
                self.api_key = Some(ApiKey::new(value));
            }
            "api_version" => {
                let ok = value.len() >= 2
                    && value.starts_with('v')
                    && value[1..].chars().all(|c| c.is_ascii_digit());
                if !ok {
                    return Err(bad("api_version", "`v` and a number, e.g. v2", value));
                }
                self.api_version = Some((value.to_owned(), line));
            }
            "loglevel" => {
                self.loglevel = Some(parse_loglevel(value).ok_or_else(|| {
                    bad(
                        "loglevel",
                        "a Python logging level: 10, 20, 30, 40, 50 or DEBUG/INFO/WARNING/ERROR",
                        value,
                    )
                })?);
            }
            other => self.ignored.push(ignored_hint(other)),
        }
        Ok(())
    }

    fn missing(&self, key: &'static str, needed_for: &'static str, hint: &'static str) -> EnvError {
        EnvError::Missing {
            file: self.file.clone(),
            key,
            needed_for,
            hint,
        }
    }

    /// `stage`, required for the telemetry topic.
    pub fn stage(&self) -> Result<&str, EnvError> {
        self.stage.as_ref().map(|(s, _)| s.as_str()).ok_or_else(|| {
            self.missing(
                "stage",
                "for the telemetry topic $aws/rules/iot_data_platform_telemetry_{stage}",
                " (dev, stg or prd)",
            )
        })
    }

    /// `base_url`, required to provision.
    pub fn base_url(&self) -> Result<&str, EnvError> {
        self.base_url
            .as_ref()
            .map(|(s, _)| s.as_str())
            .ok_or_else(|| self.missing("base_url", "to call the configuration service", ""))
    }

    /// `api_key`, required to provision.
    pub fn api_key(&self) -> Result<&ApiKey, EnvError> {
        self.api_key.as_ref().ok_or_else(|| {
            self.missing(
                "api_key",
                "for the x-api-key header of the configuration service",
                " or set HDM_API_KEY",
            )
        })
    }

    /// `api_version`, `v2` when absent.
    pub fn api_version(&self) -> &str {
        self.api_version
            .as_ref()
            .map_or(DEFAULT_API_VERSION, |(s, _)| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV_PRD: &str = "stage=prd\nloglevel=20\napi_key=abc123\nbase_url=https://cfg.iot.connectprint.cloud\napi_version=v2\n";

    #[test]
    fn reference_env_file_parses() {
        let e = EnvFile::parse("env.prd", ENV_PRD).unwrap();
        assert_eq!(e.stage().unwrap(), "prd");
        assert_eq!(e.base_url().unwrap(), "https://cfg.iot.connectprint.cloud");
        assert_eq!(e.api_key().unwrap().expose(), "abc123");
        assert_eq!(e.api_version(), "v2");
        assert_eq!(e.loglevel, Some(LogLevel::Info));
        assert!(!format!("{e:?}").contains("abc123"));
    }

    #[test]
    fn comments_quotes_export_and_defaults() {
        let e = EnvFile::parse(
            "env.dev",
            "# dev\nexport stage=\"dev\"\nbase_url='https://h/' # trailing\n\nauth_token=x\n",
        )
        .unwrap();
        assert_eq!(e.stage().unwrap(), "dev");
        assert_eq!(e.base_url().unwrap(), "https://h");
        assert_eq!(e.api_version(), "v2");
        assert_eq!(e.ignored.len(), 1);
        assert!(e.ignored[0].contains("auth_token"));
        let err = e.api_key().unwrap_err().to_string();
        assert!(err.contains("env.dev") && err.contains("api_key"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = EnvFile::parse("env.stg", "stage=stg\nbase_url=ftp://x\n").unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("env.stg line 2: `base_url`"), "{s}");
        let err = EnvFile::parse("env.stg", "stage=stg\njust words\n").unwrap_err();
        assert!(matches!(err, EnvError::Syntax { line: 2, .. }), "{err}");
        // A key line without its `=` holds the key itself: named by file and line, not shown.
        let err = EnvFile::parse("env.stg", "stage=stg\napi_key s3cr3t-value\n").unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("env.stg line 2: expected `key=value`"), "{s}");
        assert!(
            !s.contains("s3cr3t") && !format!("{err:?}").contains("s3cr3t"),
            "{s}"
        );
        let err = EnvFile::parse("env.stg", "api key=s3cr3t-value\n").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        let err = EnvFile::parse("env.stg", "stage=stg\nstage=prd\n").unwrap_err();
        assert!(err.to_string().contains("first on line 1"), "{err}");
        let err = EnvFile::parse("env.stg", "loglevel=loud\n").unwrap_err();
        assert!(err.to_string().contains("`loglevel`"), "{err}");
        let err = EnvFile::parse("env.stg", "stage=a/b\n").unwrap_err();
        assert!(err.to_string().contains("`stage`"), "{err}");
        let err = EnvFile::parse("env.stg", "api_key=has space\n").unwrap_err();
        assert!(!err.to_string().contains("has space"), "{err}");
        let err = EnvFile::parse("env.stg", "api_version=2\n").unwrap_err();
        assert!(err.to_string().contains("v2"), "{err}");
    }

    #[test]
    fn shipped_example_files_parse() {
        for (name, text, stage) in [
            (
                "env.dev",
                include_str!("../../../../configs/hdm/env.dev"),
                "dev",
            ),
            (
                "env.stg",
                include_str!("../../../../configs/hdm/env.stg"),
                "stg",
            ),
            (
                "env.prd",
                include_str!("../../../../configs/hdm/env.prd"),
                "prd",
            ),
        ] {
            let e = EnvFile::parse(name, text).unwrap();
            assert_eq!(e.stage().unwrap(), stage);
            assert!(e.base_url().is_ok() && e.api_key().is_ok());
            assert!(e.ignored.is_empty(), "{:?}", e.ignored);
        }
        let sim = include_str!("../../../../configs/hdm/env.sim");
        let e = EnvFile::parse("env.sim", sim).unwrap_err().to_string();
        assert!(
            e.contains("`base_url`"),
            "the PORT placeholder must be replaced: {e}"
        );
        let filled = sim.replace("PORT", "8443");
        assert!(EnvFile::parse("env.sim", &filled).is_ok());
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(EnvFile::parse("e", "base_url=http://localhost:8443/hdm").is_ok());
        assert!(EnvFile::parse("e", "base_url=http://example.com").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = EnvFile::parse("env.x", &text);
        }
    }
}
