//! The command line as clap sees it: consistency, each subcommand's accepted and refused argv,
//! and that no flag takes a secret.

use clap::{CommandFactory, Parser};

use super::{Cli, Command};

fn parse(argv: &str) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("gooee-pub").chain(argv.split_whitespace()))
}

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn accepted_argv() {
    for argv in [
        "meta --device d1 temperature=21.5 als=87",
        "meta --device d1 --data m.json",
        "meta --device d1 --data - --no-local-check --watch-rejected",
        "action --space s --type off --value {\"transition_time\":5}",
        "action --building b --type off", // refused later, by the topic table check
        "alarm --device d --type t --level info --priority 255",
        "alarm --building b --data -",
        "headcount --area a 5",
        "headcount --building b --kind headcount_in 7",
        "sub devices/d/meta devices/d/meta/+ -C 2 --ws --ws-path /x",
        "--output json sub devices/d/meta",
        "sub devices/d/meta --output json -b mqtts://localhost:1 --cafile ca.pem",
        "sub devices/d/meta -u authorization --password-file tok",
    ] {
        if let Err(e) = parse(argv) {
            panic!("`{argv}` should parse: {e}");
        }
    }
}

#[test]
fn refused_argv() {
    for argv in [
        "meta --device d1",                         // no values, no --data
        "meta --device d1 --data - a=1",            // both
        "meta als=1",                               // no --device
        "meta --device d a1=1 --rejected-wait 250", // wait without watch
        "action --type off",                        // no target
        "action --device a --space b --type off",   // two targets
        "alarm --device d --type t --level info --priority 256",
        "alarm --device d --type t --level info", // no priority
        "alarm --space s --data -",               // spaces have no alarms
        "headcount --building b --kind in 7",
        "headcount --device d 7",
        "sub",
        "sub devices/d/meta --password x", // no flag takes a secret
    ] {
        assert!(parse(argv).is_err(), "`{argv}` should be refused");
    }
}

#[test]
fn values_land_where_expected() {
    let Command::Meta(m) = parse("meta --device d a1=1 --watch-rejected --rejected-wait 250")
        .unwrap()
        .command
    else {
        panic!("not meta")
    };
    assert_eq!(
        (m.device.as_str(), m.values.as_slice()),
        ("d", ["a1=1".to_owned()].as_slice())
    );
    assert!(m.publish.watch_rejected);
    assert_eq!(m.publish.rejected_wait, 250);
    let Command::Sub(s) = parse("sub t/x -C 2 --ws --ws-path /x").unwrap().command else {
        panic!("not sub")
    };
    assert_eq!(
        (s.count, s.conn.ws, s.conn.ws_path.as_str()),
        (Some(2), true, "/x")
    );
}

#[test]
fn no_flag_takes_a_secret_value() {
    for sub in Cli::command().get_subcommands() {
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if ["password", "token", "secret"]
                .iter()
                .any(|w| id.contains(w))
            {
                assert!(
                    id.ends_with("_env") || id.ends_with("_file") || arg.get_env().is_some(),
                    "`{} --{id}` would take a secret on the command line",
                    sub.get_name()
                );
            }
        }
    }
}
