//! Questions on a terminal (dialoguer): which model file, and whether to send. Asked only when
//! stdin and stderr are terminals, the output is text, and `--yes` was not given.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use cli::output::{Format, Output};
use mindconnect::agent::AgentError;
use mindconnect::templates::TemplateDir;

/// Whether to ask.
pub fn interactive(yes: bool, out: Output) -> bool {
    !yes && out.format() == Format::Text
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(prompt_err)`
fn prompt_err(e: dialoguer::Error) -> AgentError {
    AgentError::Input(format!("cannot ask on the terminal: {e}"))
}

/// Lets the user pick a `.json` file of `dir` (the default first).
pub fn pick(dir: &TemplateDir, default: &Path) -> Result<PathBuf, AgentError> {
    let mut files = dir.json_files(default)?;
    if files.len() <= 1 {
        return Ok(files.pop().unwrap_or_else(|| default.to_owned()));
    }
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let i = dialoguer::Select::new()
        .with_prompt("Model file")
        .items(&names)
        .default(0)
        .interact()
        .map_err(prompt_err)?;
    Ok(files.swap_remove(i))
}

/// Asks yes/no (default yes).
pub fn confirm(question: &str) -> Result<bool, AgentError> {
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(true)
        .interact()
        .map_err(prompt_err)
}
