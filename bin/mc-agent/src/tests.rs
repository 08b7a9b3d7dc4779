//! Flag parsing tests: the command is consistent, and argv arrays parse as documented.
use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent_and_parses() {
    Cli::command().debug_assert();
    let c = Cli::try_parse_from([
        "mc-agent",
        "run",
        "--count",
        "3",
        "--duration",
        "10m",
        "--event-interval",
        "off",
        "--on-command",
        "reboot=./reboot.sh",
        "--output",
        "json",
    ])
    .unwrap();
    let Command::Run { run: r, .. } = c.command else {
        panic!()
    };
    assert_eq!(
        (
            r.count,
            r.duration.map(|d| d.as_secs()),
            r.event_interval.0,
            r.ts_interval.0
        ),
        (
            Some(3),
            Some(600),
            None,
            Some(std::time::Duration::from_secs(60))
        )
    );
    assert!(Cli::try_parse_from(["mc-agent", "run", "--on-command", "no-equals"]).is_err());
    assert!(
        Cli::try_parse_from([
            "mc-agent",
            "timeseries",
            "--value",
            "temperature=31",
            "--values",
            "-"
        ])
        .is_err(),
        "one source at a time"
    );
    assert!(matches!(
        Cli::try_parse_from(["mc-agent", "upload", "f.bin", "--datalake"])
            .unwrap()
            .command,
        Command::Upload { datalake: true, .. }
    ));
    assert!(
        Cli::try_parse_from([
            "mc-agent",
            "token",
            "-c",
            "x.json",
            "--timeout",
            "3",
            "-i",
            "t_a",
            "--cert",
            "a.pem"
        ])
        .is_ok()
    );
    assert!(Cli::try_parse_from(["mc-agent", "upload"]).is_err());
}
