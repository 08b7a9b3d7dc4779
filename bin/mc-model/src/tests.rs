//! Flag parsing tests: the command is consistent, and argv arrays parse as documented.
use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent_and_parses() {
    Cli::command().debug_assert();
    let c = Cli::try_parse_from([
        "mc-model", "publish", "m.json", "--yes", "--output", "json", "-c", "cfg.json",
    ])
    .unwrap();
    assert!(c.yes);
    let Command::Publish {
        file: Some(_),
        no_check: false,
        config,
    } = c.command
    else {
        panic!()
    };
    assert_eq!(config.config, PathBuf::from("cfg.json"));
    let c = Cli::try_parse_from([
        "mc-model",
        "instantiate",
        "--force",
        "--timeout",
        "5",
        "-i",
        "t_a",
    ])
    .unwrap();
    let Command::Instantiate {
        force: true,
        config,
        ..
    } = c.command
    else {
        panic!()
    };
    assert_eq!(
        (config.timeout, config.broker.client_id.as_deref()),
        (5, Some("t_a"))
    );
    assert!(Cli::try_parse_from(["mc-model", "show", "--model", "a", "--instance", "b"]).is_ok());
    assert!(Cli::try_parse_from(["mc-model"]).is_err());
    assert!(Cli::try_parse_from(["mc-model", "publish", "--qos", "2"]).is_err());
}
