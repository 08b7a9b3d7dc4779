//! The reference client's env files (`env.dev|stg|prd`, gen 3's `env.test|live`): dotenv lines
//! whose keys name the API generation and its credentials (the `env.*` files of the HDM IoT reference client, <https://github.com/hdm-master/iot-reference-client>). Parses text;
//! reading the file is the agent's job. Every error names the file, the line and the key, and
//! never shows a line that may hold a secret.
//!
//! Keys the reference client wrote: `stage`, `base_url`, `api_key` (gen 1), `api_version`,
//! `loglevel`, `auth_token` (gen 2, 2b), `DIRECTORY_OAUTH_CLIENT_ID`, `DIRECTORY_HOST`, `SCOPE`
//! (gen 3). Keys this client adds: `generation` (when the keys alone do not tell),
//! `auth_token_file` (the Bearer token from a file), `MACHINE_NAME`, `MACHINE_MANUFACTURER`,
//! `MACHINE_SERIAL_NUMBER` (the machine gen 3 registers in the Zaikio directory).
//!
//! Why not `dotenvy`: every error and every value here carries its line number (dotenvy's
//! iterator yields none); dotenvy substitutes `$NAME` from the process environment, which would
//! silently alter a key or token containing `$`; and its parse error carries the offending line,
//! which may be `api_key VALUE` without its `=`. The format read here is python-dotenv's as the
//! reference client writes it: `key=value`, optional `export `, single or double quotes, `#`
//! comments.

use transport::auth::Secret;

use crate::protocol::generation::Generation;

/// The API version gen 1 speaks (`x-api-key` auth).
pub const DEFAULT_API_VERSION: &str = "v2";
/// The scopes the gen-3 reference client asks the Zaikio directory for.
pub const DEFAULT_SCOPE: &str =
    "Org.prinect.onprem.rw,Org.directory.machines.rw,Org.directory.organization.r";

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

/// A value with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The value.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// A parsed env file. Secrets are [`Secret`]s: `Debug` never shows them.
#[derive(Debug, Clone, Default)]
pub struct EnvFile {
    /// Name of the file, for messages.
    pub file: String,
    /// `stage`: `dev`, `stg`, `prd`; part of the gen-1 telemetry topic.
    pub stage: Option<Line>,
    /// `base_url` of the configuration service, without a trailing `/`.
    pub base_url: Option<Line>,
    /// `api_key` for the `x-api-key` header (gen 1).
    pub api_key: Option<Secret>,
    /// Line of `api_key`.
    pub api_key_line: Option<usize>,
    /// `api_version` (gen 1 default `v2`; gen 2 `v3`).
    pub api_version: Option<Line>,
    /// `loglevel`.
    pub loglevel: Option<LogLevel>,
    /// `auth_token`: the Bearer token (gen 2, 2b).
    pub auth_token: Option<Secret>,
    /// Line of `auth_token`.
    pub auth_token_line: Option<usize>,
    /// `auth_token_file`: a file holding the Bearer token (relative to the env file).
    pub auth_token_file: Option<Line>,
    /// `generation`: `1`, `2`, `2b` or `3`, when given.
    pub generation: Option<(Generation, usize)>,
    /// `DIRECTORY_OAUTH_CLIENT_ID` (gen 3).
    pub directory_client_id: Option<Line>,
    /// `DIRECTORY_HOST`, without a trailing `/` (gen 3).
    pub directory_host: Option<Line>,
    /// `SCOPE` (gen 3).
    pub scope: Option<Line>,
    /// `MACHINE_NAME` (gen 3 directory registration).
    pub machine_name: Option<Line>,
    /// `MACHINE_MANUFACTURER`.
    pub machine_manufacturer: Option<Line>,
    /// `MACHINE_SERIAL_NUMBER`.
    pub machine_serial_number: Option<Line>,
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
        "{file} line {line}: expected `key=value` (the line is not shown: it may hold a key or token)"
    )]
    Syntax {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
    },
    /// A key with a bad value.
    #[error("{file} line {line}: `{key}` must be {expected}, found {found}")]
    Value {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was, quoted (never a secret: then "(not shown)").
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
    /// Keys of two generations, and no `generation` to choose.
    #[error(
        "{file}: `{a}` (line {a_line}) is a generation {a_gen} key and `{b}` (line {b_line}) a generation {b_gen} key; remove one, or add `generation=1|2|2b|3`"
    )]
    Mixed {
        /// File.
        file: String,
        /// First key.
        a: &'static str,
        /// Its line.
        a_line: usize,
        /// Its generation.
        a_gen: &'static str,
        /// Second key.
        b: &'static str,
        /// Its line.
        b_line: usize,
        /// Its generation.
        b_gen: &'static str,
    },
}

fn quoted(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("`{}…`", s.chars().take(60).collect::<String>())
    } else {
        format!("`{s}`")
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

/// Whether `v` is an https URL (http only to this machine) without query or fragment. The
/// agent checks it again against the HTTP policy before any call.
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
    let lower = key.to_ascii_lowercase();
    if ["stage", "api_key", "base_url", "auth_token", "api_version"].contains(&lower.as_str()) {
        return format!("`{key}` is ignored: this key is lower case (`{lower}`)");
    }
    format!("`{key}` is not used by hdm-telemetry (ignored)")
}

/// The upper-case gen-3 keys, read in either case.
fn canonical(key: &str) -> &str {
    for k in [
        "DIRECTORY_OAUTH_CLIENT_ID",
        "DIRECTORY_HOST",
        "SCOPE",
        "MACHINE_NAME",
        "MACHINE_MANUFACTURER",
        "MACHINE_SERIAL_NUMBER",
    ] {
        if key.eq_ignore_ascii_case(k) {
            return k;
        }
    }
    key
}

fn secret_ok(v: &str) -> bool {
    !v.is_empty() && !v.chars().any(|c| c.is_control() || c.is_whitespace())
}

impl EnvFile {
    /// Parses the text of an env file called `file`.
    pub fn parse(file: &str, text: &str) -> Result<EnvFile, EnvError> {
        let mut env = EnvFile {
            file: file.to_owned(),
            ..EnvFile::default()
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
            let key = canonical(k.trim());
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

    fn bad(&self, line: usize, key: &'static str, expected: &'static str, found: &str) -> EnvError {
        EnvError::Value {
            file: self.file.clone(),
            line,
            key,
            expected,
            found: quoted(found),
        }
    }

    fn hidden(&self, line: usize, key: &'static str, expected: &'static str) -> EnvError {
        EnvError::Value {
            file: self.file.clone(),
            line,
            key,
            expected,
            found: "a value with spaces or control characters (not shown)".into(),
        }
    }

    fn set(&mut self, key: &str, value: &str, line: usize) -> Result<(), EnvError> {
        let at = |v: &str| {
            Some(Line {
                value: v.to_owned(),
                line,
            })
        };
        match key {
            "stage" => {
                if crate::protocol::topics::validate_stage(value).is_err() {
                    return Err(self.bad(
                        line,
                        "stage",
                        "a stage name of letters, digits, `_` or `-` (dev, stg, prd)",
                        value,
                    ));
                }
                self.stage = at(value);
            }
            "base_url" => {
                if !valid_base_url(value) {
                    return Err(self.bad(
                        line,
                        "base_url",
                        "an https:// URL without query, e.g. https://cfg.iot.stg.connectprint.cloud",
                        value,
                    ));
                }
                self.base_url = at(value.trim_end_matches('/'));
            }
            "DIRECTORY_HOST" => {
                if !valid_base_url(value) {
                    return Err(self.bad(
                        line,
                        "DIRECTORY_HOST",
                        "an https:// URL without query, e.g. https://directory.sandbox.zaikio.com",
                        value,
                    ));
                }
                self.directory_host = at(value.trim_end_matches('/'));
            }
            "api_key" => {
                if !secret_ok(value) {
                    return Err(self.hidden(line, "api_key", "a non-empty key without spaces"));
                }
                self.api_key = Some(value.into());
                self.api_key_line = Some(line);
            }
            "auth_token" => {
                if !secret_ok(value) {
                    return Err(self.hidden(
                        line,
                        "auth_token",
                        "the JWT from HDM without spaces (is it still the `{Insert the jwt token here}` placeholder?)",
                    ));
                }
                self.auth_token = Some(value.into());
                self.auth_token_line = Some(line);
            }
            "auth_token_file" => {
                if value.is_empty() {
                    return Err(self.bad(line, "auth_token_file", "a file name", value));
                }
                self.auth_token_file = at(value);
            }
            "generation" => {
                let g = Generation::parse(value)
                    .ok_or_else(|| self.bad(line, "generation", "1, 2, 2b or 3", value))?;
                self.generation = Some((g, line));
            }
            "api_version" => {
                let ok = value.len() >= 2
                    && value.starts_with('v')
                    && value[1..].chars().all(|c| c.is_ascii_digit());
                if !ok {
                    return Err(self.bad(line, "api_version", "`v` and a number, e.g. v2", value));
                }
                self.api_version = at(value);
            }
            "loglevel" => {
                self.loglevel = Some(parse_loglevel(value).ok_or_else(|| {
                    self.bad(
                        line,
                        "loglevel",
                        "a Python logging level: 10, 20, 30, 40, 50 or DEBUG/INFO/WARNING/ERROR",
                        value,
                    )
                })?);
            }
            "DIRECTORY_OAUTH_CLIENT_ID"
            | "SCOPE"
            | "MACHINE_NAME"
            | "MACHINE_MANUFACTURER"
            | "MACHINE_SERIAL_NUMBER" => {
                if value.is_empty() || value.chars().any(char::is_control) {
                    let k: &'static str = match key {
                        "DIRECTORY_OAUTH_CLIENT_ID" => "DIRECTORY_OAUTH_CLIENT_ID",
                        "SCOPE" => "SCOPE",
                        "MACHINE_NAME" => "MACHINE_NAME",
                        "MACHINE_MANUFACTURER" => "MACHINE_MANUFACTURER",
                        _ => "MACHINE_SERIAL_NUMBER",
                    };
                    return Err(self.bad(line, k, "a non-empty value", value));
                }
                let slot = match key {
                    "DIRECTORY_OAUTH_CLIENT_ID" => &mut self.directory_client_id,
                    "SCOPE" => &mut self.scope,
                    "MACHINE_NAME" => &mut self.machine_name,
                    "MACHINE_MANUFACTURER" => &mut self.machine_manufacturer,
                    _ => &mut self.machine_serial_number,
                };
                *slot = at(value);
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

    /// The generation these keys describe: `generation` when given; else `DIRECTORY_*` → 3;
    /// `auth_token` (or `auth_token_file`) → 2 with `api_version`, 2b without (2b dropped the
    /// key); `api_key`, or nothing at all → 1. Keys of two generations are an error.
    pub fn generation(&self) -> Result<Generation, EnvError> {
        if let Some((g, _)) = self.generation {
            return Ok(g);
        }
        let gen1 = self.api_key_line.map(|l| ("api_key", l));
        let bearer = self.auth_token_line.map(|l| ("auth_token", l)).or_else(|| {
            self.auth_token_file
                .as_ref()
                .map(|l| ("auth_token_file", l.line))
        });
        let gen3 = self
            .directory_host
            .as_ref()
            .map(|l| ("DIRECTORY_HOST", l.line))
            .or_else(|| {
                self.directory_client_id
                    .as_ref()
                    .map(|l| ("DIRECTORY_OAUTH_CLIENT_ID", l.line))
            });
        let bearer_gen = if self.api_version.is_some() {
            "2"
        } else {
            "2b"
        };
        let named = [(gen1, "1"), (bearer, bearer_gen), (gen3, "3")];
        let present: Vec<_> = named
            .iter()
            .filter_map(|(k, g)| k.map(|(key, line)| (key, line, *g)))
            .collect();
        if let [(a, a_line, a_gen), (b, b_line, b_gen), ..] = present[..] {
            return Err(EnvError::Mixed {
                file: self.file.clone(),
                a,
                a_line,
                a_gen,
                b,
                b_line,
                b_gen,
            });
        }
        Ok(match present.first() {
            Some((_, _, "3")) => Generation::Gen3,
            Some((_, _, "2")) => Generation::Gen2,
            Some((_, _, "2b")) => Generation::Gen2b,
            _ => Generation::Gen1,
        })
    }

    /// `stage`, required for the gen-1 telemetry topic.
    pub fn stage(&self) -> Result<&str, EnvError> {
        self.stage
            .as_ref()
            .map(|l| l.value.as_str())
            .ok_or_else(|| {
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
            .map(|l| l.value.as_str())
            .ok_or_else(|| self.missing("base_url", "to call the configuration service", ""))
    }

    /// `api_key`, required to provision in gen 1.
    pub fn api_key(&self) -> Result<&Secret, EnvError> {
        self.api_key.as_ref().ok_or_else(|| {
            self.missing(
                "api_key",
                "for the x-api-key header of the configuration service",
                " or set HDM_API_KEY",
            )
        })
    }

    /// The Bearer token, required to provision in gen 2 and 2b.
    pub fn auth_token(&self) -> Result<&Secret, EnvError> {
        self.auth_token.as_ref().ok_or_else(|| {
            self.missing(
                "auth_token",
                "for the Authorization: Bearer header of the configuration service",
                ", or `auth_token_file=PATH`, or set HDM_AUTH_TOKEN, or pass --token-file",
            )
        })
    }

    /// `api_version` of the gen-1 configuration call, `v2` when absent.
    pub fn api_version(&self) -> &str {
        self.api_version
            .as_ref()
            .map_or(DEFAULT_API_VERSION, |l| l.value.as_str())
    }

    /// `DIRECTORY_HOST`, required for gen 3.
    pub fn directory_host(&self) -> Result<&str, EnvError> {
        self.directory_host
            .as_ref()
            .map(|l| l.value.as_str())
            .ok_or_else(|| {
                self.missing(
                    "DIRECTORY_HOST",
                    "for the Zaikio OAuth device flow and directory (generation 3)",
                    " (https://directory.sandbox.zaikio.com or https://directory.heidelberg.cloud)",
                )
            })
    }

    /// `DIRECTORY_OAUTH_CLIENT_ID`, required for gen 3.
    pub fn directory_client_id(&self) -> Result<&str, EnvError> {
        self.directory_client_id
            .as_ref()
            .map(|l| l.value.as_str())
            .ok_or_else(|| {
                self.missing(
                    "DIRECTORY_OAUTH_CLIENT_ID",
                    "for the Zaikio OAuth device flow (generation 3)",
                    " with the OAuth client id HDM gave you",
                )
            })
    }

    /// `SCOPE`, the reference client's scopes when absent.
    pub fn scope(&self) -> &str {
        self.scope
            .as_ref()
            .map_or(DEFAULT_SCOPE, |l| l.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::auth::ExposeSecret;

    const ENV_PRD: &str = "stage=prd\nloglevel=20\napi_key=abc123\nbase_url=https://cfg.iot.connectprint.cloud\napi_version=v2\n";

    #[test]
    fn reference_env_file_parses() {
        let e = EnvFile::parse("env.prd", ENV_PRD).unwrap();
        assert_eq!(e.stage().unwrap(), "prd");
        assert_eq!(e.base_url().unwrap(), "https://cfg.iot.connectprint.cloud");
        assert_eq!(e.api_key().unwrap().expose_secret(), "abc123");
        assert_eq!(e.api_version(), "v2");
        assert_eq!(e.loglevel, Some(LogLevel::Info));
        assert_eq!(e.generation().unwrap(), Generation::Gen1);
        assert!(!format!("{e:?}").contains("abc123"));
    }

    #[test]
    fn each_generations_reference_keys_name_it() {
        let gen2 = "stage=stg\nauth_token=eyJhbGciOi.x.y\nbase_url=https://cfg.iot.stg.connectprint.cloud\napi_version=v3\n";
        let e = EnvFile::parse("env.stg", gen2).unwrap();
        assert_eq!(e.generation().unwrap(), Generation::Gen2);
        assert_eq!(e.auth_token().unwrap().expose_secret(), "eyJhbGciOi.x.y");
        assert!(!format!("{e:?}").contains("eyJhbGciOi"));
        let gen2b = gen2.replace("api_version=v3\n", "");
        assert_eq!(
            EnvFile::parse("env.stg", &gen2b)
                .unwrap()
                .generation()
                .unwrap(),
            Generation::Gen2b
        );
        let gen3 = "base_url=https://cfg.iot.stg.connectprint.cloud\nDIRECTORY_OAUTH_CLIENT_ID=abc\nDIRECTORY_HOST=https://directory.sandbox.zaikio.com/\nSCOPE=Org.x.r\nstage=stg\n";
        let e = EnvFile::parse("env.test", gen3).unwrap();
        assert_eq!(e.generation().unwrap(), Generation::Gen3);
        assert_eq!(
            e.directory_host().unwrap(),
            "https://directory.sandbox.zaikio.com"
        );
        assert_eq!(e.scope(), "Org.x.r");
        let e = EnvFile::parse("env.test", "directory_host=https://d\n").unwrap();
        assert_eq!(e.generation().unwrap(), Generation::Gen3);
        let e = EnvFile::parse("e", "auth_token_file=token\n").unwrap();
        assert_eq!(e.generation().unwrap(), Generation::Gen2b);
        let e = EnvFile::parse("e", "api_key=k\ngeneration=2b\n").unwrap();
        assert_eq!(e.generation().unwrap(), Generation::Gen2b);
    }

    #[test]
    fn keys_of_two_generations_are_named_with_their_lines() {
        let e = EnvFile::parse("env.dev", "api_key=k\nauth_token=t\n").unwrap();
        let s = e.generation().unwrap_err().to_string();
        assert!(
            s.contains("`api_key` (line 1)") && s.contains("`auth_token` (line 2)"),
            "{s}"
        );
        assert!(!s.contains("=k") && !s.contains("=t"), "{s}");
    }

    #[test]
    fn comments_quotes_export_and_defaults() {
        let e = EnvFile::parse(
            "env.dev",
            "# dev\nexport stage=\"dev\"\nbase_url='https://h/' # trailing\n\nfrobnicate=x\n",
        )
        .unwrap();
        assert_eq!(e.stage().unwrap(), "dev");
        assert_eq!(e.base_url().unwrap(), "https://h");
        assert_eq!(e.api_version(), "v2");
        assert_eq!(e.scope(), DEFAULT_SCOPE);
        assert_eq!(e.ignored.len(), 1);
        assert!(e.ignored[0].contains("frobnicate"));
        let err = e.api_key().unwrap_err().to_string();
        assert!(err.contains("env.dev") && err.contains("api_key"), "{err}");
        let err = e.auth_token().unwrap_err().to_string();
        assert!(err.contains("--token-file"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_key_and_hide_secrets() {
        let err = EnvFile::parse("env.stg", "stage=stg\nbase_url=ftp://x\n").unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("env.stg line 2: `base_url`"), "{s}");
        let err = EnvFile::parse("env.stg", "stage=stg\njust words\n").unwrap_err();
        assert!(matches!(err, EnvError::Syntax { line: 2, .. }), "{err}");
        // A key line without its `=` holds the key itself: named by file and line, not shown.
        for line in [
            "api_key s3cr3t-value",
            "auth_token s3cr3t-value",
            "s3cr3t-value",
        ] {
            let err = EnvFile::parse("env.stg", &format!("stage=stg\n{line}\n")).unwrap_err();
            let s = err.to_string();
            assert!(s.starts_with("env.stg line 2: expected `key=value`"), "{s}");
            assert!(
                !s.contains("s3cr3t") && !format!("{err:?}").contains("s3cr3t"),
                "{s}"
            );
        }
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
        let err =
            EnvFile::parse("env.stg", "auth_token={Insert the jwt token here}\n").unwrap_err();
        assert!(err.to_string().contains("placeholder"), "{err}");
        let err = EnvFile::parse("env.stg", "api_version=2\n").unwrap_err();
        assert!(err.to_string().contains("v2"), "{err}");
        let err = EnvFile::parse("env.stg", "generation=4\n").unwrap_err();
        assert!(err.to_string().contains("2b"), "{err}");
    }

    #[test]
    fn shipped_example_files_parse() {
        for (name, text, stage, generation) in [
            (
                "env.dev",
                include_str!("../../../../configs/hdm/env.dev"),
                "dev",
                Generation::Gen1,
            ),
            (
                "env.stg",
                include_str!("../../../../configs/hdm/env.stg"),
                "stg",
                Generation::Gen1,
            ),
            (
                "env.prd",
                include_str!("../../../../configs/hdm/env.prd"),
                "prd",
                Generation::Gen1,
            ),
            (
                "gen2/env.stg",
                include_str!("../../../../configs/hdm/gen2/env.stg"),
                "stg",
                Generation::Gen2,
            ),
            (
                "gen2b/env.stg",
                include_str!("../../../../configs/hdm/gen2b/env.stg"),
                "stg",
                Generation::Gen2b,
            ),
            (
                "gen3/env.test",
                include_str!("../../../../configs/hdm/gen3/env.test"),
                "stg",
                Generation::Gen3,
            ),
        ] {
            let e = EnvFile::parse(name, text).unwrap();
            assert_eq!(e.stage().unwrap(), stage, "{name}");
            assert_eq!(e.generation().unwrap(), generation, "{name}");
            assert!(e.base_url().is_ok(), "{name}");
            assert!(e.ignored.is_empty(), "{name}: {:?}", e.ignored);
        }
        let sim = include_str!("../../../../configs/hdm/env.sim");
        // `iot-sim up --port-base 18880` serves HTTPS on 18885: the file works unedited.
        let e = EnvFile::parse("env.sim", sim).unwrap();
        assert_eq!(e.base_url().unwrap(), "https://localhost:18885/hdm");
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(EnvFile::parse("e", "base_url=http://localhost:8443/hdm").is_ok());
        assert!(EnvFile::parse("e", "base_url=http://example.com").is_err());
        assert!(EnvFile::parse("e", "DIRECTORY_HOST=http://example.com").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            if let Ok(e) = EnvFile::parse("env.x", &text) {
                let _ = e.generation();
            }
        }
    }
}
