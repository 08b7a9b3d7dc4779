//! Tests of the agent state machine: start-up order, the instance gate, token refresh, limits,
//! timeouts and routing, all with time as an argument.

use super::*;
use crate::protocol::model::{JobStatus, Status};
use serde_json::json;

const S: Duration = Duration::from_secs(1);

fn topics() -> Topics {
    Topics::new("t", "t_a").unwrap()
}

fn plan(count: Option<u64>) -> Plan {
    Plan {
        intervals: BTreeMap::from([
            (Task::Timeseries, 10 * S),
            (Task::Event, 20 * S),
            (Task::Datalake, 20 * S),
        ]),
        count,
        duration: None,
        wait_commands: 0,
        answer_timeout: 30 * S,
    }
}

fn ids() -> Box<dyn FnMut() -> String + Send> {
    let mut n = 0;
    Box::new(move || {
        n += 1;
        format!("req{n}")
    })
}

fn machine(count: Option<u64>, fresh: bool) -> Machine {
    let inst = fresh.then(|| InstanceRequest {
        id: "inst1".into(),
        payload: b"{}".to_vec(),
    });
    Machine::new(topics(), plan(count), inst, ids())
}

fn reply(request_id: &str, status: Status) -> Vec<u8> {
    encode(&JobReply {
        id: "p".into(),
        correlation_id: None,
        request_id: Some(request_id.into()),
        data: JobStatus {
            id: None,
            model_id: None,
            status,
            message: None,
            errors: vec![],
        },
    })
}

fn token(request_id: &str, expires: u64) -> Vec<u8> {
    encode(
        &json!({"id":"p","requestId":request_id,"data":{"access_token":"jwt","expires_in":expires}}),
    )
}

fn runs(a: &[Action]) -> Vec<Task> {
    a.iter()
        .filter_map(|a| {
            if let Action::Run(t) = a {
                Some(*t)
            } else {
                None
            }
        })
        .collect()
}

fn published(a: &[Action]) -> Vec<Channel> {
    a.iter()
        .filter_map(|a| {
            if let Action::Publish { channel, .. } = a {
                Some(*channel)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn first_run_instantiates_then_timeseries_flows() {
    let t0 = Instant::now();
    let mut m = machine(Some(1), true);
    let a = m.start(t0);
    assert_eq!(published(&a), [Channel::Instantiate, Channel::TokenRequest]);
    assert_eq!(
        runs(&a),
        [Task::Event],
        "timeseries waits for the instance, datalake for the token"
    );
    let ip = m.topics.topic(Channel::InstanceProgress);
    let a = m.on_message(&ip, &reply("inst1", Status::InProgress), t0 + S);
    assert!(matches!(a[0], Action::Note(Note::InstanceProgress { .. })));
    let a = m.on_message(&ip, &reply("inst1", Status::Success), t0 + 2 * S);
    assert_eq!(a[0], Action::InstanceCreated);
    assert_eq!(runs(&a), [Task::Timeseries]);
    let a = m.on_message(
        &m.topics.topic(Channel::TokenResponse),
        &token("req1", 3600),
        t0 + 2 * S,
    );
    assert!(matches!(a[0], Action::Token(_)));
    assert_eq!(runs(&a), [Task::Datalake]);
    assert!(m.task_done(Task::Event, t0 + 3 * S).is_empty());
    assert!(m.task_done(Task::Timeseries, t0 + 3 * S).is_empty());
    assert_eq!(
        m.task_done(Task::Datalake, t0 + 3 * S),
        [Action::Finish(Finish::Done)]
    );
    assert!(m.is_finished());
}

#[test]
fn second_run_does_not_instantiate() {
    let mut m = machine(Some(1), false);
    let a = m.start(Instant::now());
    assert_eq!(published(&a), [Channel::TokenRequest]);
    assert!(a.contains(&Action::Note(Note::InstanceExists)));
    assert!(runs(&a).contains(&Task::Timeseries));
}

#[test]
fn a_failed_instantiation_holds_timeseries_back_and_ends_a_bounded_run_with_its_errors() {
    let t0 = Instant::now();
    let mut m = machine(Some(1), true);
    let started = m.start(t0);
    assert!(!runs(&started).contains(&Task::Timeseries));
    let body = json!({"id":"p","requestId":"inst1","data":{"status":"Failed","errors":[{"code":"E","message":"no model `X`"}]}});
    let a = m.on_message(
        &m.topics.topic(Channel::InstanceProgress),
        &encode(&body),
        t0,
    );
    match &a[..] {
        [Action::Note(Note::InstanceRefused { errors, .. }), ..] => {
            assert_eq!(errors[0].message, "no model `X`");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !a.iter().any(|x| matches!(x, Action::Finish(_))),
        "events, files and commands go on: {a:?}"
    );
    // The other tasks finish their one run; timeseries never runs; the run ends rejected.
    let mut pending = runs(&started);
    pending.extend(runs(&a));
    pending.extend(runs(&m.on_message(
        &m.topics.topic(Channel::TokenResponse),
        &token("req1", 3600),
        t0,
    )));
    let mut ended = Vec::new();
    while let Some(t) = pending.pop() {
        assert_ne!(t, Task::Timeseries);
        let next = m.task_done(t, t0);
        pending.extend(runs(&next));
        ended.extend(next);
    }
    assert!(
        ended.iter().any(|x| matches!(
            x,
            Action::Finish(Finish::Rejected {
                what: "instantiation",
                ..
            })
        )),
        "{ended:?}"
    );
}

#[test]
fn answers_for_other_requests_are_ignored_and_timeouts_end_the_run() {
    let t0 = Instant::now();
    let mut m = machine(None, true);
    m.start(t0);
    let a = m.on_message(
        &m.topics.topic(Channel::InstanceProgress),
        &reply("someone-else", Status::Success),
        t0,
    );
    assert!(matches!(&a[..], [Action::Note(Note::Ignored { .. })]));
    assert_eq!(
        m.next_wake(),
        Some(t0 + 30 * S),
        "the event task runs; the answer deadline is next"
    );
    let a = m.poll(t0 + 30 * S);
    match &a[..] {
        [
            Action::Finish(Finish::NoAnswer {
                what: "instantiation",
                topic,
                ..
            }),
        ] => assert_eq!(topic, "tc/t/t_a/i/amo_v3/ip"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_token_is_refreshed_before_it_expires() {
    let t0 = Instant::now();
    let mut m = machine(None, false);
    m.start(t0);
    let tr = m.topics.topic(Channel::TokenResponse);
    m.on_message(&tr, &token("req1", 100), t0);
    assert!(published(&m.poll(t0 + 74 * S)).is_empty());
    let a = m.poll(t0 + 75 * S);
    assert_eq!(published(&a), [Channel::TokenRequest]);
    // While the refresh is out, the old token still serves the datalake.
    assert!(m.gate_open(Task::Datalake));
    let a = m.on_message(&tr, &token("req1", 100), t0 + 76 * S);
    assert!(
        matches!(&a[..], [Action::Note(Note::Ignored { .. })]),
        "stale answer: {a:?}"
    );
    let a = m.on_message(&tr, &token("req2", 100), t0 + 76 * S);
    assert!(matches!(a[0], Action::Token(_)));
}

#[test]
fn intervals_repeat_and_count_bounds_each_task() {
    let t0 = Instant::now();
    let mut m = machine(Some(2), false);
    m.start(t0);
    m.on_message(
        &m.topics.topic(Channel::TokenResponse),
        &token("req1", 3600),
        t0,
    );
    for t in [Task::Timeseries, Task::Event, Task::Datalake] {
        m.task_done(t, t0);
    }
    assert_eq!(m.next_wake(), Some(t0 + 10 * S));
    assert_eq!(runs(&m.poll(t0 + 10 * S)), [Task::Timeseries]);
    m.task_done(Task::Timeseries, t0 + 10 * S);
    assert_eq!(
        runs(&m.poll(t0 + 20 * S)),
        [Task::Event, Task::Datalake],
        "timeseries reached its count"
    );
    m.task_done(Task::Event, t0 + 20 * S);
    assert_eq!(
        m.task_done(Task::Datalake, t0 + 20 * S),
        [Action::Finish(Finish::Done)]
    );
}

#[test]
fn waiting_for_commands_holds_the_end() {
    let t0 = Instant::now();
    let mut p = plan(Some(1));
    p.intervals = BTreeMap::from([(Task::Event, S)]);
    p.wait_commands = 1;
    let mut m = Machine::new(topics(), p, None, ids());
    m.start(t0);
    m.on_message(
        &m.topics.topic(Channel::TokenResponse),
        &token("req1", 3600),
        t0,
    );
    assert!(m.task_done(Task::Event, t0).is_empty());
    let c = encode(
        &json!({"id":"c1","data":{"jobId":"j","payload":{"commandType":"light_control","execute_command":"ON"}}}),
    );
    let a = m.on_message(&m.topics.topic(Channel::Command), &c, t0);
    assert!(matches!(&a[..], [Action::Command(c)] if c.data.job_id == "j"));
    assert_eq!(m.command_done(t0), [Action::Finish(Finish::Done)]);
}

#[test]
fn duration_ends_the_run() {
    let t0 = Instant::now();
    let mut p = plan(None);
    p.duration = Some(5 * S);
    let mut m = Machine::new(topics(), p, None, ids());
    m.start(t0);
    m.on_message(
        &m.topics.topic(Channel::TokenResponse),
        &token("req1", 3600),
        t0,
    );
    assert_eq!(m.poll(t0 + 5 * S), [Action::Finish(Finish::Done)]);
    assert!(m.poll(t0 + 6 * S).is_empty());
}

#[test]
fn hostile_messages_are_reported_not_fatal() {
    let t0 = Instant::now();
    let mut m = machine(None, true);
    m.start(t0);
    for ch in [
        Channel::InstanceProgress,
        Channel::TokenResponse,
        Channel::Command,
    ] {
        let a = m.on_message(&m.topics.topic(ch), b"\xff{not json", t0);
        assert!(
            matches!(&a[..], [Action::Note(Note::Undecodable { .. })]),
            "{ch:?}: {a:?}"
        );
    }
    let a = m.on_message("tc/t/t_a/i/amo_v3/ms", b"{}", t0);
    assert!(matches!(&a[..], [Action::Note(Note::Ignored { .. })]));
    assert!(!m.is_finished());
}

#[test]
fn an_exhausted_source_counts_as_done() {
    let t0 = Instant::now();
    let mut p = plan(Some(5));
    p.intervals = BTreeMap::from([(Task::Timeseries, S)]);
    let mut m = Machine::new(topics(), p, None, ids());
    m.start(t0);
    m.on_message(
        &m.topics.topic(Channel::TokenResponse),
        &token("req1", 3600),
        t0,
    );
    assert!(m.task_done(Task::Timeseries, t0).is_empty());
    assert_eq!(
        m.task_exhausted(Task::Timeseries, t0 + S),
        [Action::Finish(Finish::Done)]
    );
}
