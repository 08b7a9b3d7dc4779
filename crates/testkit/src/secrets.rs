//! Checks that a built binary keeps secrets out of its command line and its output:
//! [`secret_taking_flags`] walks `--help` of the binary and of every subcommand and lists each
//! flag that takes a secret itself as its value (flags show in `ps` and in shell history);
//! [`assert_no_secret`] greps a run's stdout and stderr for known secret values.

use std::path::Path;
use std::process::{Command, Output};

/// Words that make a flag's name or value name secret-looking.
const SECRET_WORDS: [&str; 7] = [
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "key",
    "credential",
];

/// Value names that say the value refers to the secret rather than being it.
const REFERENCES: [&str; 8] = ["VAR", "NAME", "PATH", "FILE", "PEM", "DIR", "FILE|-", "URL"];

fn secretish(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|s| w.contains(s))
}

/// Whether `--flag <value>` takes a secret itself: a secret-looking name whose value is not a
/// reference, or a secret-looking value name. `KEY=VALUE` is a pair (a twin property, a data
/// point), not a key.
fn takes_secret(flag: &str, value: &str) -> bool {
    let pair = value.contains('=');
    !pair && ((secretish(flag) && !REFERENCES.contains(&value)) || secretish(value))
}

/// `(flag, value name)` of each option line of a clap help text.
fn options(help: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        let mut tokens = t.split_whitespace().map(|s| s.trim_end_matches(','));
        let Some(flag) = tokens.by_ref().find(|s| s.starts_with("--")) else {
            continue;
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (flag, None),
        };
        let value = inline.or_else(|| {
            tokens
                .next()
                .filter(|v| v.starts_with('<') || v.starts_with("[<"))
                .map(str::to_owned)
        });
        let value = value.map(|v| {
            v.trim_matches(|c| matches!(c, '<' | '>' | '[' | ']' | '.'))
                .to_owned()
        });
        out.push((flag.to_owned(), value));
    }
    out
}

/// Subcommand names listed under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if line.trim().is_empty() || !line.starts_with(' ') {
                break;
            }
            // Names are indented by two spaces; continuation lines of a long description by
            // more.
            if line.starts_with("   ") {
                continue;
            }
            if let Some(name) = line.split_whitespace().next()
                && name != "help"
            {
                out.push(name.to_owned());
            }
        }
    }
    out
}

fn help_of(bin: &Path, path: &[String]) -> String {
    let out = Command::new(bin)
        .args(path)
        .arg("--help")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("testkit: cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "testkit: {} {} --help failed: {}",
        bin.display(),
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every flag of `bin` (and of each subcommand, recursively) that takes a secret as its value:
/// a flag whose name looks secret (password, token, key, ...) and whose value is not a
/// reference (`<VAR>`, `<PATH>`, `<FILE>`, `<PEM>`, ...), or any flag whose value name looks
/// secret (`<TOKEN>`). Each entry reads `SUBCOMMAND --flag <VALUE>`.
pub fn secret_taking_flags(bin: &Path) -> Vec<String> {
    walk(bin).1
}

/// How many help pages [`secret_taking_flags`] reads (the binary and its subcommands), so a
/// test can check the walk really went into the subcommands.
pub fn help_pages(bin: &Path) -> usize {
    walk(bin).0
}

/// Panics unless the walk of `bin`'s help reads at least `min_pages` pages and finds no flag
/// that takes a secret as its value (one walk for both).
pub fn assert_no_secret_taking_flags(bin: &Path, min_pages: usize) {
    let (pages, bad) = walk(bin);
    assert!(
        pages >= min_pages,
        "the walk of {} read {pages} help pages, expected at least {min_pages} (the subcommands too)",
        bin.display()
    );
    assert!(
        bad.is_empty(),
        "flags of {} that take the secret itself (visible in ps): {bad:?}",
        bin.display()
    );
}

/// A file holding `text` with mode 0644, readable by everyone (as a careless `echo > file`
/// leaves it).
pub fn public_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("testkit: write {}: {e}", p.display()));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("testkit: chmod {}: {e}", p.display()));
    p
}

/// The help pages read and the secret-taking flags found.
fn walk(bin: &Path) -> (usize, Vec<String>) {
    let mut found = Vec::new();
    let mut queue = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        seen += 1;
        assert!(
            seen < 200,
            "testkit: too many subcommands under {}",
            bin.display()
        );
        let help = help_of(bin, &path);
        for (flag, value) in options(&help) {
            let Some(value) = value else { continue };
            if takes_secret(&flag, &value) {
                found.push(
                    format!("{} {flag} <{value}>", path.join(" "))
                        .trim()
                        .to_owned(),
                );
            }
        }
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
    }
    found.sort();
    found.dedup();
    (seen, found)
}

/// Panics when stdout or stderr of `out` contains one of `secrets`, naming the stream.
pub fn assert_no_secret(what: &str, out: &Output, secrets: &[&str]) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for s in secrets {
            assert!(
                !text.contains(s),
                "{what}: the secret `{s}` appeared on {stream}:\n{text}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
Usage: x [OPTIONS] <COMMAND>

Commands:
  run         Run the agent: instantiate once, then timeseries, events, files, token, datalake,
              commands
  token       Request an agent token
  help        Print this message

Options:
  -u, --username <NAME>        MQTT username
      --password-env <VAR>     Read the password from this variable
      --password <PASSWORD>    The password itself
      --api-key=<KEY>          The key itself
      --key <PEM>              Client private key
      --note <TOKEN>           Anything, named like a token
      --no-key-check           A switch
      --twin <KEY=VALUE>       A property, not a key
";

    #[test]
    fn flags_that_take_the_secret_itself_are_found_and_references_are_not() {
        let opts = options(HELP);
        let bad: Vec<&str> = opts
            .iter()
            .filter_map(|(f, v)| takes_secret(f, v.as_deref()?).then_some(f.as_str()))
            .collect();
        assert_eq!(bad, ["--password", "--api-key", "--note"]);
        assert_eq!(subcommands(HELP), ["run", "token"]);
    }
}
