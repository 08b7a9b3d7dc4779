//! Topic builders (every topic string of the crate is made here), the rejected topic of a
//! publish, and routing a concrete topic back to what it carries. Pure.

use super::{
    Entity, HeadCountKind, TOPICS, TopicError, check_level, check_publish, matches_pattern,
};

/// `devices/{device}/meta`.
pub fn device_meta(device: &str) -> Result<String, TopicError> {
    check_level("device id", device)?;
    Ok(format!("devices/{device}/meta"))
}

/// `devices/{device}/meta/{name}`: one meta value, relayed by the platform.
pub fn device_meta_name(device: &str, name: &str) -> Result<String, TopicError> {
    check_level("device id", device)?;
    check_level("meta name", name)?;
    Ok(format!("devices/{device}/meta/{name}"))
}

/// `{entity}s/{id}/actions`.
pub fn actions(entity: Entity, id: &str) -> Result<String, TopicError> {
    check_level("id", id)?;
    Ok(format!("{}/{id}/actions", entity.level()))
}

/// `{entity}s/{id}/actions/{type}`: one action type, relayed by the platform.
pub fn action_type(entity: Entity, id: &str, kind: &str) -> Result<String, TopicError> {
    check_level("id", id)?;
    check_level("action type", kind)?;
    Ok(format!("{}/{id}/actions/{kind}", entity.level()))
}

/// `{entity}s/{id}/fault_alarms`.
pub fn fault_alarms(entity: Entity, id: &str) -> Result<String, TopicError> {
    check_level("id", id)?;
    Ok(format!("{}/{id}/fault_alarms", entity.level()))
}

/// `{entity}s/{id}/meta/{head_count|headcount_in|headcount_out}`.
pub fn head_count(entity: Entity, id: &str, kind: HeadCountKind) -> Result<String, TopicError> {
    check_level("id", id)?;
    Ok(format!("{}/{id}/meta/{}", entity.level(), kind.level()))
}

/// The rejected topic that reports on publishes to `topic`, when the table has one
/// (`devices/X/meta`, `devices/X/fault_alarms`, `buildings/X/fault_alarms`).
pub fn rejected_for(topic: &str) -> Option<String> {
    let candidate = format!("{topic}/rejected");
    TOPICS
        .iter()
        .any(|r| r.rejected && matches_pattern(r.pattern, &candidate))
        .then_some(candidate)
}

/// What a publishable topic carries, for the platform side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `devices/{device}/meta`: a meta list.
    DeviceMeta {
        /// Device id.
        device: String,
    },
    /// `devices|spaces/{id}/actions`: an action.
    Actions {
        /// Device or space.
        entity: Entity,
        /// Its id.
        id: String,
    },
    /// `devices|buildings/{id}/fault_alarms`: a fault alarm.
    FaultAlarms {
        /// Device or building.
        entity: Entity,
        /// Its id.
        id: String,
    },
    /// `areas|spaces|buildings/{id}/meta/head_count|headcount_in|headcount_out`.
    HeadCount {
        /// Area, space or building.
        entity: Entity,
        /// Its id.
        id: String,
        /// Which count.
        kind: HeadCountKind,
    },
}

/// Routes a concrete topic that clients may publish to; `None` for anything else.
pub fn route(topic: &str) -> Option<Route> {
    check_publish(topic).ok()?;
    let levels: Vec<&str> = topic.split('/').collect();
    let entity = Entity::from_level(levels.first()?)?;
    let id = (*levels.get(1)?).to_owned();
    match (entity, levels.get(2..)?) {
        (Entity::Device, ["meta"]) => Some(Route::DeviceMeta { device: id }),
        (_, ["actions"]) => Some(Route::Actions { entity, id }),
        (_, ["fault_alarms"]) => Some(Route::FaultAlarms { entity, id }),
        (_, ["meta", kind]) => {
            HeadCountKind::from_level(kind).map(|kind| Route::HeadCount { entity, id, kind })
        }
        _ => None,
    }
}
