//! Gooee's topic table as data: every pattern of the broker documentation (seed 004, "Topics"
//! and "Rejected Topics") with its publish and subscribe rights, the check that refuses what the
//! table does not allow (naming what is allowed instead), the topic builders, and the routing of
//! a concrete topic back to what it carries. Pure: no I/O, no clock, no panics.
//!
//! Every topic string of the crate is built here, so the agent and the cloud side cannot drift.

mod build;

use std::fmt;

pub use build::{
    Route, action_type, actions, device_meta, device_meta_name, fault_alarms, head_count,
    rejected_for, route,
};

/// One row of Gooee's topic table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRule {
    /// The pattern as the documentation writes it, e.g. `devices/(:id)/meta/(:name)`.
    pub pattern: &'static str,
    /// "Pub" column: clients may publish here.
    pub publish: bool,
    /// "Sub" column: clients may subscribe here.
    pub subscribe: bool,
    /// The documentation's description.
    pub description: &'static str,
    /// From the "Rejected Topics" table (the platform's feedback on rejected publishes).
    pub rejected: bool,
}

const fn rule(
    pattern: &'static str,
    publish: bool,
    subscribe: bool,
    description: &'static str,
) -> TopicRule {
    TopicRule {
        pattern,
        publish,
        subscribe,
        description,
        rejected: false,
    }
}

const fn rejected(pattern: &'static str, description: &'static str) -> TopicRule {
    TopicRule {
        pattern,
        publish: false,
        subscribe: true,
        description,
        rejected: true,
    }
}

/// The whole table, in the documentation's order (source: seed 004, "Topics" and "Rejected
/// Topics"). Any other topic makes the real broker drop the connection.
#[rustfmt::skip]
pub const TOPICS: &[TopicRule] = &[
    rule("devices/(:id)/meta", true, true, "All Meta values for a Device."),
    rule("devices/(:id)/meta/(:name)", false, true, "A specific Meta value for a Device."),
    rule("devices/(:id)/actions", true, true, "All the Actions for a Device."),
    rule("devices/(:id)/actions/(:type)", false, true, "A specific Action on a Device."),
    rule("devices/(:id)/fault_alarms", true, true, "Fault Alarms for a Device."),
    rule("areas/(:id)/meta/head_count", true, true, "head_count Meta value for an Area."),
    rule("areas/(:id)/meta/headcount_in", true, true, "headcount_in Meta value for an Area."),
    rule("areas/(:id)/meta/headcount_out", true, true, "headcount_out Meta value for an Area."),
    rule("spaces/(:id)/actions", true, true, "All the Actions for a Space."),
    rule("spaces/(:id)/actions/(:type)", false, true, "A specific Action on a Space."),
    rule("spaces/(:id)/meta/head_count", true, true, "head_count Meta value for a Space."),
    rule("spaces/(:id)/meta/headcount_in", true, true, "headcount_in Meta value for a Space."),
    rule("spaces/(:id)/meta/headcount_out", true, true, "headcount_out Meta value for a Space."),
    rule("buildings/(:id)/actions", false, true, "All the Actions for Devices under the Building."),
    rule("buildings/(:id)/actions/(:type)", false, true, "Specific Actions for Devices under the Building."),
    rule("buildings/(:id)/fault_alarms", true, true, "Fault Alarms for a Building."),
    rule("buildings/(:id)/meta/head_count", true, true, "head_count Meta value for a Building."),
    rule("buildings/(:id)/meta/headcount_in", true, true, "headcount_in Meta value for a Building."),
    rule("buildings/(:id)/meta/headcount_out", true, true, "headcount_out Meta value for a Building."),
    rejected("devices/(:id)/meta/rejected", "All rejected Meta values for a Device."),
    rejected("devices/(:id)/fault_alarms/rejected", "All rejected Fault Alarms for a Device."),
    rejected("buildings/(:id)/fault_alarms/rejected", "All rejected Fault Alarms for a Building."),
];

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// PUBLISH.
    Publish,
    /// SUBSCRIBE.
    Subscribe,
}

impl Access {
    fn allowed_by(self, r: &TopicRule) -> bool {
        match self {
            Access::Publish => r.publish,
            Access::Subscribe => r.subscribe,
        }
    }
    fn verb(self) -> &'static str {
        match self {
            Access::Publish => "publishing to",
            Access::Subscribe => "subscribing to",
        }
    }
    fn other_only(self) -> &'static str {
        match self {
            Access::Publish => "subscribe-only",
            Access::Subscribe => "publish-only",
        }
    }
}

/// The kinds of things that have topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    /// `devices/(:id)`.
    Device,
    /// `areas/(:id)`.
    Area,
    /// `spaces/(:id)`.
    Space,
    /// `buildings/(:id)`.
    Building,
}

impl Entity {
    /// The first topic level, e.g. `devices`.
    pub fn level(self) -> &'static str {
        match self {
            Entity::Device => "devices",
            Entity::Area => "areas",
            Entity::Space => "spaces",
            Entity::Building => "buildings",
        }
    }
    /// The singular noun, for messages and `target_type` (`device`, `space`, ...).
    pub fn noun(self) -> &'static str {
        match self {
            Entity::Device => "device",
            Entity::Area => "area",
            Entity::Space => "space",
            Entity::Building => "building",
        }
    }
    fn from_level(level: &str) -> Option<Entity> {
        match level {
            "devices" => Some(Entity::Device),
            "areas" => Some(Entity::Area),
            "spaces" => Some(Entity::Space),
            "buildings" => Some(Entity::Building),
            _ => None,
        }
    }
}

/// The three head-count topics of areas, spaces and buildings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadCountKind {
    /// `.../meta/head_count`; its payload's name is `headcount` (as the documentation's examples show).
    HeadCount,
    /// `.../meta/headcount_in`.
    In,
    /// `.../meta/headcount_out`.
    Out,
}

impl HeadCountKind {
    /// All three.
    pub const ALL: [HeadCountKind; 3] = [
        HeadCountKind::HeadCount,
        HeadCountKind::In,
        HeadCountKind::Out,
    ];

    /// The last topic level.
    pub fn level(self) -> &'static str {
        match self {
            HeadCountKind::HeadCount => "head_count",
            HeadCountKind::In => "headcount_in",
            HeadCountKind::Out => "headcount_out",
        }
    }
    /// The `name` the documentation's example payloads carry on this topic.
    pub fn payload_name(self) -> &'static str {
        match self {
            HeadCountKind::HeadCount => "headcount",
            HeadCountKind::In => "headcount_in",
            HeadCountKind::Out => "headcount_out",
        }
    }
    fn from_level(level: &str) -> Option<HeadCountKind> {
        HeadCountKind::ALL.into_iter().find(|k| k.level() == level)
    }
}

/// Why a topic was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// An id (or name, or action type) that cannot be one topic level.
    #[error("{what} `{value}` cannot be a topic level: {problem}")]
    BadLevel {
        /// `device id`, `meta name`, `action type`, ...
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The table does not allow it.
    #[error(transparent)]
    Refused(#[from] TopicRefused),
}

/// A publish or subscribe that Gooee's topic table does not allow (the real broker would drop
/// the connection), with what is allowed instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRefused {
    /// The topic or filter.
    pub topic: String,
    /// What was attempted.
    pub access: Access,
    /// The table row it matched (which lacks the right), if any.
    pub matched: Option<&'static str>,
    /// Why a filter is refused beyond the table (wildcards), if that is the reason.
    pub wildcard: Option<&'static str>,
    /// Topics that are allowed instead (instantiated with the topic's id where it has one).
    pub alternatives: Vec<String>,
}

impl TopicRefused {
    /// Why, in one clause (what a broker logs): `Gooee's topic table does not allow …`.
    pub fn reason(&self) -> String {
        let verb = self.access.verb();
        match (self.wildcard, self.matched) {
            (Some(why), _) => format!(
                "Gooee's topic table does not allow {verb} `{}`: {why}",
                self.topic
            ),
            (None, Some(p)) => format!(
                "Gooee's topic table does not allow {verb} `{}`: `{p}` is {}",
                self.topic,
                self.access.other_only()
            ),
            (None, None) => format!("`{}` is not in Gooee's topic table", self.topic),
        }
    }
}

impl fmt::Display for TopicRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())?;
        f.write_str("; the broker would drop the connection, so nothing was sent")?;
        if !self.alternatives.is_empty() {
            let what = match self.access {
                Access::Publish => "you may publish to",
                Access::Subscribe => "you may subscribe to",
            };
            write!(f, "; {what}: {}", self.alternatives.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for TopicRefused {}

fn is_var(pattern_level: &str) -> bool {
    pattern_level.starts_with("(:") && pattern_level.ends_with(')')
}

/// Checks that `value` can stand as one topic level (an id, a meta name, an action type).
pub fn check_level(what: &'static str, value: &str) -> Result<(), TopicError> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.contains('/') {
        Some("it contains `/`")
    } else if value.contains(['+', '#']) {
        Some("it contains an MQTT wildcard (`+` or `#`)")
    } else if value.contains('\0') {
        Some("it contains a NUL character")
    } else if value.len() > 1024 {
        Some("it is longer than 1024 bytes")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(TopicError::BadLevel {
            what,
            value: value.chars().take(80).collect(),
            problem,
        }),
        None => Ok(()),
    }
}

fn concrete_level_ok(level: &str) -> bool {
    !level.is_empty() && !level.contains(['+', '#', '\0'])
}

/// Whether the concrete `topic` matches `pattern` (variables match any one non-empty level).
fn matches_pattern(pattern: &str, topic: &str) -> bool {
    let mut p = pattern.split('/');
    let mut t = topic.split('/');
    loop {
        match (p.next(), t.next()) {
            (None, None) => return true,
            (Some(pl), Some(tl)) if is_var(pl) && concrete_level_ok(tl) => {}
            (Some(pl), Some(tl)) if pl == tl => {}
            _ => return false,
        }
    }
}

/// Whether the filter `filter` (with `+` only where the pattern has a variable) lies within `pattern`.
fn filter_within_pattern(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (None, None) => return true,
            (Some(pl), Some("+")) if is_var(pl) => {}
            (Some(pl), Some(fl)) if is_var(pl) && concrete_level_ok(fl) => {}
            (Some(pl), Some(fl)) if pl == fl => {}
            _ => return false,
        }
    }
}

/// The rows a concrete topic matches (a meta named `rejected` matches two).
pub fn rules_for(topic: &str) -> impl Iterator<Item = &'static TopicRule> + '_ {
    TOPICS
        .iter()
        .filter(move |r| matches_pattern(r.pattern, topic))
}

fn alternatives(topic: &str, access: Access) -> Vec<String> {
    let mut levels = topic.split('/');
    let entity = levels.next().and_then(Entity::from_level);
    let id = levels.next().filter(|l| concrete_level_ok(l));
    TOPICS
        .iter()
        .filter(|r| access.allowed_by(r))
        .filter_map(|r| match (entity, id) {
            (Some(e), Some(id)) => r
                .pattern
                .strip_prefix(e.level())
                .and_then(|rest| rest.strip_prefix("/(:id)"))
                .map(|rest| format!("{}/{id}{rest}", e.level())),
            _ => Some(r.pattern.to_owned()),
        })
        .collect()
}

/// Refuses a publish the table does not allow, naming the allowed alternatives.
pub fn check_publish(topic: &str) -> Result<(), TopicRefused> {
    let rows: Vec<&TopicRule> = rules_for(topic).collect();
    if rows.iter().any(|r| r.publish) {
        return Ok(());
    }
    Err(TopicRefused {
        topic: topic.to_owned(),
        access: Access::Publish,
        matched: rows.first().map(|r| r.pattern),
        wildcard: None,
        alternatives: alternatives(topic, Access::Publish),
    })
}

/// Refuses a subscription the table does not allow. `+` is accepted where the pattern has a
/// variable (`devices/+/meta`); `#` never is, since it would reach topics outside the table.
/// Whether the real broker accepts `+` at all is not documented.
pub fn check_subscribe(filter: &str) -> Result<(), TopicRefused> {
    let refused = |wildcard, matched| TopicRefused {
        topic: filter.to_owned(),
        access: Access::Subscribe,
        matched,
        wildcard,
        alternatives: alternatives(filter, Access::Subscribe),
    };
    if filter.contains('#') {
        return Err(refused(
            Some("the multi-level wildcard `#` reaches topics outside the table"),
            None,
        ));
    }
    let rows: Vec<&TopicRule> = TOPICS
        .iter()
        .filter(|r| filter_within_pattern(r.pattern, filter))
        .collect();
    if rows.iter().any(|r| r.subscribe) {
        return Ok(());
    }
    if filter.split('/').any(|l| l.contains('+')) && rows.is_empty() {
        return Err(refused(
            Some("`+` may only stand where the table has (:id), (:name) or (:type)"),
            None,
        ));
    }
    Err(refused(None, rows.first().map(|r| r.pattern)))
}

/// The table as mosquitto ACL lines for `user` (publish-and-subscribe rows become `readwrite`,
/// subscribe-only rows `read`; `(:id)`, `(:name)`, `(:type)` become `+`). Used to make a
/// mosquitto enforce the table, as in `configs/gooee/mosquitto.acl`.
pub fn mosquitto_acl(user: &str) -> String {
    let mut out = format!("user {user}\n");
    for r in TOPICS {
        let filter: Vec<&str> = r
            .pattern
            .split('/')
            .map(|l| if is_var(l) { "+" } else { l })
            .collect();
        let access = match (r.publish, r.subscribe) {
            (true, true) => "readwrite",
            (true, false) => "write",
            (false, true) => "read",
            (false, false) => continue,
        };
        out.push_str(&format!("topic {access} {}\n", filter.join("/")));
    }
    out
}

#[cfg(test)]
mod tests;
