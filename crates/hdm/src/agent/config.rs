//! Finding and reading the env file: `--env-file PATH`, or `--stage S` for `./env.S`, or the
//! reference client's `PIPENV_DOTENV_LOCATION`. Secrets never come from a flag: the API key may
//! come from `HDM_API_KEY`, the Bearer token from `HDM_AUTH_TOKEN`, a token file (`--token-file`
//! or `auth_token_file=` in the env file) or the env file itself. An env file or token file
//! holding a secret that others can read is warned about.

use std::path::{Path, PathBuf};

use transport::auth::Secret;

use crate::agent::AgentError;
use crate::protocol::env::EnvFile;
use crate::protocol::topics::validate_stage;

/// Environment variable that overrides `api_key`.
pub const API_KEY_VAR: &str = "HDM_API_KEY";
/// Environment variable that overrides `auth_token`.
pub const AUTH_TOKEN_VAR: &str = "HDM_AUTH_TOKEN";
/// The reference client's way of naming the env file.
pub const DOTENV_VAR: &str = "PIPENV_DOTENV_LOCATION";

/// Secrets from outside the env file, strongest first: a token file, then the variables.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `HDM_API_KEY`.
    pub api_key: Option<Secret>,
    /// `HDM_AUTH_TOKEN`.
    pub auth_token: Option<Secret>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
}

impl Overrides {
    /// The variables of this process, and `token_file`.
    pub fn from_environment(token_file: Option<PathBuf>) -> Self {
        let var = |n| {
            std::env::var(n)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::from)
        };
        Overrides {
            api_key: var(API_KEY_VAR),
            auth_token: var(AUTH_TOKEN_VAR),
            token_file,
        }
    }
}

/// Which env file to read: `env_file`, else `dir/env.{stage}`, else `$PIPENV_DOTENV_LOCATION`.
pub fn env_path(
    env_file: Option<&Path>,
    stage: Option<&str>,
    dir: &Path,
) -> Result<PathBuf, AgentError> {
    if let Some(p) = env_file {
        return Ok(p.to_owned());
    }
    if let Some(s) = stage {
        validate_stage(s)?;
        return Ok(dir.join(format!("env.{s}")));
    }
    if let Some(p) = std::env::var_os(DOTENV_VAR).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Err(AgentError::Config(format!(
        "no env file: pass --env-file PATH or --stage dev|stg|prd (reads ./env.STAGE); {DOTENV_VAR} is honoured too"
    )))
}

/// Reads a token file: one token, a trailing newline ignored.
pub fn read_token_file(path: &Path) -> Result<Secret, AgentError> {
    transport::auth::warn_if_readable(path, "token file");
    let text = std::fs::read_to_string(path).map_err(|e| {
        AgentError::Config(format!(
            "cannot read the token file `{}`: {e}",
            path.display()
        ))
    })?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AgentError::Config(format!(
            "the token file `{}` must hold one token without spaces (its content is not shown)",
            path.display()
        )));
    }
    Ok(token.into())
}

/// Reads and parses an env file; `stage` (from `--stage`) must match the file's `stage`, and
/// `overrides` replace the file's secrets.
pub fn load_env_with(
    path: &Path,
    stage: Option<&str>,
    overrides: Overrides,
) -> Result<EnvFile, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AgentError::Config(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "env file `{}` does not exist; pass --env-file PATH or --stage with an existing env.STAGE",
                path.display()
            ),
            _ => format!("cannot read env file `{}`: {e}", path.display()),
        })
    })?;
    let mut env = EnvFile::parse(&path.display().to_string(), &text)?;
    for w in &env.ignored {
        tracing::warn!("{}: {w}", path.display());
    }
    if env.api_key.is_some() || env.auth_token.is_some() {
        transport::auth::warn_if_readable(path, "env file with a key or token");
    }
    if let Some(k) = overrides.api_key {
        env.api_key = Some(k);
    }
    let file_token = env.auth_token_file.as_ref().map(|l| {
        let p = PathBuf::from(&l.value);
        if p.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(p)
        } else {
            p
        }
    });
    if let Some(p) = &overrides.token_file {
        env.auth_token = Some(read_token_file(p)?);
    } else if let Some(t) = overrides.auth_token {
        env.auth_token = Some(t);
    } else if let Some(p) = file_token {
        env.auth_token = Some(read_token_file(&p)?);
    }
    if let Some(want) = stage
        && let Some(have) = &env.stage
        && have.value != want
    {
        return Err(AgentError::Config(format!(
            "{} line {}: `stage` is `{}`, but --stage {want} picked this file",
            path.display(),
            have.line,
            have.value
        )));
    }
    Ok(env)
}

/// [`load_env_with`] with the secrets from `HDM_API_KEY`, `HDM_AUTH_TOKEN` and `token_file`.
pub fn load_env(
    path: &Path,
    stage: Option<&str>,
    token_file: Option<PathBuf>,
) -> Result<EnvFile, AgentError> {
    load_env_with(path, stage, Overrides::from_environment(token_file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::generation::Generation;
    use std::os::unix::fs::PermissionsExt;
    use transport::auth::ExposeSecret;

    #[test]
    fn stage_picks_the_file_and_must_match() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            env_path(None, Some("stg"), dir.path()).unwrap(),
            dir.path().join("env.stg")
        );
        assert!(env_path(None, Some("../x"), dir.path()).is_err());
        let p = dir.path().join("env.stg");
        std::fs::write(&p, "stage=dev\n").unwrap();
        let e = load_env_with(&p, Some("stg"), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("--stage stg"), "{e}");
        let o = Overrides {
            api_key: Some("k".into()),
            ..Overrides::default()
        };
        let env = load_env_with(&p, None, o).unwrap();
        assert_eq!(env.api_key().unwrap().expose_secret(), "k");
    }

    #[test]
    fn the_bearer_token_comes_from_a_file_relative_to_the_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("env.stg");
        std::fs::write(&p, "stage=stg\nauth_token_file=jwt.txt\n").unwrap();
        let tok = dir.path().join("jwt.txt");
        std::fs::write(&tok, "eyJ.a.b\n").unwrap();
        std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = load_env_with(&p, None, Overrides::default()).unwrap();
        assert_eq!(env.auth_token().unwrap().expose_secret(), "eyJ.a.b");
        assert_eq!(env.generation().unwrap(), Generation::Gen2b);
        // --token-file wins over the variable and the env file.
        let other = dir.path().join("other");
        std::fs::write(&other, "flag-token").unwrap();
        let o = Overrides {
            auth_token: Some("var-token".into()),
            token_file: Some(other),
            ..Overrides::default()
        };
        let env = load_env_with(&p, None, o).unwrap();
        assert_eq!(env.auth_token().unwrap().expose_secret(), "flag-token");
        std::fs::write(&tok, "two words").unwrap();
        let e = load_env_with(&p, None, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("jwt.txt") && !e.contains("two words"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load_env_with(
            Path::new("/nonexistent/env.dev"),
            None,
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/env.dev") && e.contains("does not exist"),
            "{e}"
        );
    }
}
