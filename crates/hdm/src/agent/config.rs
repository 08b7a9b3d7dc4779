//! Finding and reading the env file: `--env-file PATH`, or `--stage S` for `./env.S`, or the
//! reference client's `PIPENV_DOTENV_LOCATION`; the API key may come from `HDM_API_KEY`
//! instead of the file (never from a flag).

use std::path::{Path, PathBuf};

use crate::agent::AgentError;
use crate::protocol::env::{ApiKey, EnvFile};
use crate::protocol::topics::validate_stage;

/// Environment variable that overrides `api_key`.
pub const API_KEY_VAR: &str = "HDM_API_KEY";
/// The reference client's way of naming the env file.
pub const DOTENV_VAR: &str = "PIPENV_DOTENV_LOCATION";

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

/// Reads and parses an env file; `stage` (from `--stage`) must match the file's `stage`, and
/// `api_key`, when given, replaces the file's.
pub fn load_env_with(
    path: &Path,
    stage: Option<&str>,
    api_key: Option<String>,
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
    if let Some(k) = api_key.filter(|k| !k.is_empty()) {
        env.api_key = Some(ApiKey::new(k));
    }
    if let Some(want) = stage
        && let Some((have, line)) = &env.stage
        && have != want
    {
        return Err(AgentError::Config(format!(
            "{} line {line}: `stage` is `{have}`, but --stage {want} picked this file",
            path.display()
        )));
    }
    Ok(env)
}

/// [`load_env_with`] with the API key from `HDM_API_KEY` when set.
pub fn load_env(path: &Path, stage: Option<&str>) -> Result<EnvFile, AgentError> {
    load_env_with(path, stage, std::env::var(API_KEY_VAR).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = load_env_with(&p, Some("stg"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("--stage stg"), "{e}");
        let env = load_env_with(&p, None, Some("k".into())).unwrap();
        assert_eq!(env.api_key().unwrap().expose(), "k");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load_env_with(Path::new("/nonexistent/env.dev"), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/env.dev") && e.contains("does not exist"),
            "{e}"
        );
    }
}
