//! Flags to a `Publication`: the payload from NAME=VALUE, flags or `--data`, checked by the
//! protocol before anything connects. Glue over `gooee::protocol` and `gooee::agent::input`.

use gooee::agent::{AgentError, input};
use gooee::protocol::{Action, Check, Entity, FaultAlarm, HeadCount, Publication, topics};

use crate::args::PubOpts;
use crate::commands::{ActionArgs, AlarmArgs, HeadcountArgs, MetaArgs};

/// The local check `--no-local-check` asks for.
pub fn check(p: &PubOpts) -> Check {
    if p.no_local_check {
        Check::TopicOnly
    } else {
        Check::Full
    }
}

/// The publication for `meta`.
pub fn build_meta(a: &MetaArgs) -> Result<Publication, AgentError> {
    let check = check(&a.publish);
    let list = match &a.data {
        Some(path) if check == Check::TopicOnly => {
            return Ok(Publication::raw(
                topics::device_meta(&a.device)?,
                input::read_data(path)?,
            )?);
        }
        Some(path) => input::meta_from_data(path, &input::read_data(path)?)?,
        None => {
            let mut list = input::meta_from_assignments(&a.values)?;
            if a.timestamp {
                let now = input::now_timestamp();
                list.0
                    .iter_mut()
                    .for_each(|e| e.timestamp = Some(now.clone()));
            }
            list
        }
    };
    Ok(Publication::meta(&a.device, &list, check)?)
}

/// The publication for `action`.
pub fn build_action(a: &ActionArgs) -> Result<Publication, AgentError> {
    let (entity, id) = a.target.get();
    let check = check(&a.publish);
    let action = match &a.data {
        Some(path) if check == Check::TopicOnly => {
            return Ok(Publication::raw(
                topics::actions(entity, &id)?,
                input::read_data(path)?,
            )?);
        }
        Some(path) => input::decode_data(path, &input::read_data(path)?, Action::decode)?,
        None => Action {
            name: a.name.clone(),
            target_type: Some(entity.noun().to_owned()),
            target_id: Some(id.clone()),
            value: a
                .value
                .as_deref()
                .map(|v| input::json_arg("--value", v))
                .transpose()?,
            created: a.timestamp.then(input::now_timestamp),
            ..Action::new(a.kind.clone().unwrap_or_default())
        },
    };
    Ok(Publication::action(entity, &id, &action, check)?)
}

/// The publication for `alarm`.
pub fn build_alarm(a: &AlarmArgs) -> Result<Publication, AgentError> {
    let (entity, id) = a.target.get();
    let check = check(&a.publish);
    let alarm = match &a.data {
        Some(path) if check == Check::TopicOnly => {
            return Ok(Publication::raw(
                topics::fault_alarms(entity, &id)?,
                input::read_data(path)?,
            )?);
        }
        Some(path) => input::decode_data(path, &input::read_data(path)?, FaultAlarm::decode)?,
        None => FaultAlarm {
            id: a.id.clone(),
            device: a
                .alarm_device
                .clone()
                .or_else(|| (entity == Entity::Device).then(|| id.clone())),
            notes: a.notes.clone(),
            value: a
                .value
                .as_deref()
                .map(|v| input::json_arg("--value", v))
                .transpose()?,
            description: a.description.clone(),
            ..FaultAlarm::new(
                a.kind.clone().unwrap_or_default(),
                a.level.clone().unwrap_or_default(),
                a.priority.unwrap_or_default(),
                a.timestamp.clone().unwrap_or_else(input::now_timestamp),
            )
        },
    };
    Ok(Publication::fault_alarm(entity, &id, &alarm, check)?)
}

/// The publication for `headcount`.
pub fn build_headcount(a: &HeadcountArgs) -> Result<Publication, AgentError> {
    let (entity, id) = a.target.get();
    let kind = a.kind.get();
    let count = HeadCount::new(kind, a.value);
    Ok(Publication::head_count(
        entity,
        &id,
        kind,
        &count,
        check(&a.publish),
    )?)
}
