//! The subcommands every binary has, added here so they behave the same everywhere:
//! `completions SHELL` (a completion script for bash, zsh, fish or PowerShell, from
//! `clap_complete`) and `man [--dir DIR]` (roff man pages, from `clap_mangen`). A binary's `main`
//! calls [`parse`] instead of `Cli::parse()`; it adds the two subcommands to the binary's own
//! command, handles them (printing and exiting) and otherwise returns the parsed `Cli`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches, value_parser};
use clap_complete::Shell;

use crate::output::exit;

/// Name of the completion subcommand.
pub const COMPLETIONS: &str = "completions";
/// Name of the man page subcommand.
pub const MAN: &str = "man";

/// `cmd` with the `completions` and `man` subcommands added.
pub fn with_builtins(cmd: Command) -> Command {
    let bin = cmd.get_name().to_owned();
    cmd.subcommand(
        Command::new(COMPLETIONS)
            .about("Print a shell completion script (bash, zsh, fish or powershell)")
            .long_about(format!(
                "Print a shell completion script on stdout, e.g.\n  \
                 source <({bin} completions bash)\n  \
                 {bin} completions zsh > \"${{fpath[1]}}/_{bin}\"\n  \
                 {bin} completions fish > ~/.config/fish/completions/{bin}.fish"
            ))
            .arg(
                Arg::new("shell")
                    .value_name("SHELL")
                    .required(true)
                    .value_parser(value_parser!(Shell)),
            ),
    )
    .subcommand(
        Command::new(MAN)
            .about("Print the man page (roff), or write one page per subcommand into --dir")
            .long_about(format!(
                "Print the man page on stdout (`{bin} man | man -l -`), or with --dir write \
                 {bin}.1 and {bin}-SUBCOMMAND.1 for every subcommand into that folder."
            ))
            .arg(
                Arg::new("dir")
                    .long("dir")
                    .value_name("DIR")
                    .value_parser(value_parser!(PathBuf)),
            ),
    )
}

/// Parses the process's arguments into `C`; handles `completions` and `man` itself (and exits).
pub fn parse<C: CommandFactory + FromArgMatches>() -> C {
    parse_from(std::env::args_os())
}

/// [`parse`] over the given arguments (the first is the program name).
pub fn parse_from<C, I, T>(args: I) -> C
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = with_builtins(C::command());
    let matches = cmd
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    if let Some(code) = run_builtin(&mut cmd, &matches) {
        std::process::exit(i32::from(code));
    }
    C::from_arg_matches(&matches)
        .map_err(|e| e.format(&mut cmd))
        .unwrap_or_else(|e| e.exit())
}

/// Runs `completions` or `man` when `matches` chose one; returns its exit code.
fn run_builtin(cmd: &mut Command, matches: &ArgMatches) -> Option<u8> {
    match matches.subcommand() {
        Some((COMPLETIONS, m)) => {
            let shell = m.get_one::<Shell>("shell").copied()?;
            let mut buf = Vec::new();
            completions(cmd, shell, &mut buf);
            Some(write_stdout(&buf))
        }
        Some((MAN, m)) => Some(if let Some(dir) = m.get_one::<PathBuf>("dir") {
            match man_pages(cmd, dir) {
                Ok(files) => {
                    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                    write_stdout(format!("{}\n", list.join("\n")).as_bytes())
                }
                Err(e) => {
                    tracing::error!("{e}");
                    exit::FAILURE
                }
            }
        } else {
            let mut buf = Vec::new();
            match man_page(cmd, &mut buf) {
                Ok(()) => write_stdout(&buf),
                Err(e) => {
                    tracing::error!("cannot render the man page: {e}");
                    exit::FAILURE
                }
            }
        }),
        _ => None,
    }
}

/// A closed stdout (`| head`) is not an error, as everywhere else.
fn write_stdout(bytes: &[u8]) -> u8 {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
    exit::OK
}

/// Writes the completion script for `shell` of `cmd` (which should already have the builtins).
pub fn completions(cmd: &mut Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, cmd, name, out);
}

/// Writes the top-level man page of `cmd`.
pub fn man_page(cmd: &Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd.clone()).render(out)
}

/// Why man pages could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write man page `{path}`: {source}")]
pub struct ManError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// Writes `NAME.1` and `NAME-SUB[-SUB…].1` for every visible subcommand into `dir` (created if
/// missing); returns the files written.
pub fn man_pages(cmd: &Command, dir: &Path) -> Result<Vec<PathBuf>, ManError> {
    std::fs::create_dir_all(dir).map_err(|source| ManError {
        path: dir.to_owned(),
        source,
    })?;
    let mut cmd = cmd.clone();
    // Subcommand pages need the full names ("iot-sim up"), which clap fills in on build.
    cmd.build();
    let mut files = Vec::new();
    write_pages(&cmd, cmd.get_name(), dir, &mut files)?;
    Ok(files)
}

fn write_pages(
    cmd: &Command,
    file_stem: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<(), ManError> {
    let path = dir.join(format!("{file_stem}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(file_stem)
        .render(&mut buf)
        .and_then(|()| std::fs::write(&path, &buf))
        .map_err(|source| ManError {
            path: path.clone(),
            source,
        })?;
    files.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{file_stem}-{}", sub.get_name()), dir, files)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    /// A stand-in for a binary's `Cli`.
    #[derive(Debug, Parser)]
    #[command(name = "demo-bin", version, about = "A demo binary.")]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
        #[arg(long, global = true)]
        verbose: bool,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        /// Do one thing.
        One {
            /// How many.
            #[arg(long)]
            count: Option<u32>,
        },
    }

    #[test]
    fn the_binary_parses_as_before() {
        let cli: Cli = parse_from(["demo-bin", "one", "--count", "3", "--verbose"]);
        assert!(cli.verbose);
        assert!(matches!(cli.command, Sub::One { count: Some(3) }));
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        let mut cmd = with_builtins(Cli::command());
        cmd.clone().debug_assert();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let mut buf = Vec::new();
            completions(&mut cmd, shell, &mut buf);
            let text = String::from_utf8(buf).unwrap();
            assert!(text.contains("demo-bin"), "{shell}: {text}");
            assert!(text.contains("completions"), "{shell}");
        }
    }

    #[test]
    fn man_pages_are_written_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = man_pages(&with_builtins(Cli::command()), dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "demo-bin.1",
                "demo-bin-one.1",
                "demo-bin-completions.1",
                "demo-bin-man.1"
            ]
        );
        let page = std::fs::read_to_string(&files[0]).unwrap();
        assert!(page.contains(".TH demo-bin 1"), "{page}");
    }
}
