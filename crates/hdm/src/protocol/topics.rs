//! Topic names, built and parsed in one place: the AWS basic-ingest telemetry topic
//! `$aws/rules/iot_data_platform_telemetry_{stage}` (gen 1), the gen-2+ topic
//! `{telemetryTopic}/{orgId}/{clientId}` and the device-shadow topics
//! `$aws/things/{thing}/shadow[/name/{shadow}]/{get|update|delete}[/{accepted|rejected|delta|documents}]`.
//! Sources: the reference client's README "Topic"; AWS IoT developer guide, "Basic Ingest" and "Device Shadow MQTT topics" (<https://docs.aws.amazon.com/iot/latest/developerguide/>). Pure.

/// First levels of every basic-ingest topic.
pub const RULES_PREFIX: &str = "$aws/rules/";
/// The HDM telemetry rule's name without its stage suffix.
pub const TELEMETRY_RULE_PREFIX: &str = "iot_data_platform_telemetry_";
/// First level of every AWS-reserved topic.
pub const AWS_PREFIX: &str = "$aws/";
/// First levels of every thing topic.
pub const THINGS_PREFIX: &str = "$aws/things/";
/// The longest thing name (and MQTT client id) AWS IoT accepts, in bytes.
pub const MAX_THING_NAME: usize = 128;
/// The longest named-shadow name AWS IoT accepts, in bytes.
pub const MAX_SHADOW_NAME: usize = 64;

/// A name that cannot be used in a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The stage from the env file.
    #[error("stage `{stage}` cannot be part of the telemetry topic: {reason}")]
    Stage {
        /// The stage.
        stage: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A level or the first levels of a topic from the network or a file.
    #[error("`{topic}` cannot be used in the telemetry topic: {reason}")]
    Level {
        /// The text.
        topic: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A thing name (client id).
    #[error("thing name `{name}` is not valid for AWS IoT: {reason}")]
    Thing {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

/// Checks a stage (`dev`, `stg`, `prd`, ...): letters, digits, `_` and `-` only.
pub fn validate_stage(stage: &str) -> Result<(), TopicError> {
    let err = |reason| TopicError::Stage {
        stage: stage.to_owned(),
        reason,
    };
    if stage.is_empty() {
        return Err(err("it is empty"));
    }
    if stage.len() > 64 {
        return Err(err("it is longer than 64 bytes"));
    }
    if !stage
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err("use only letters, digits, `_` and `-`"));
    }
    Ok(())
}

/// Checks a thing name as AWS IoT does: 1 to 128 characters of `a-zA-Z0-9:_-`.
pub fn validate_thing_name(name: &str) -> Result<(), TopicError> {
    let err = |reason: String| TopicError::Thing {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(err("it is empty".into()));
    }
    if name.len() > MAX_THING_NAME {
        return Err(err(format!("it is longer than {MAX_THING_NAME} bytes")));
    }
    if let Some(c) = name.chars().find(|c| !valid_name_char(*c)) {
        return Err(err(format!(
            "character {c:?} is not allowed (use letters, digits, `:`, `_` and `-`)"
        )));
    }
    Ok(())
}

fn valid_shadow_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_SHADOW_NAME && name.chars().all(valid_name_char)
}

/// The telemetry topic of a stage: `$aws/rules/iot_data_platform_telemetry_{stage}`.
pub fn telemetry_topic(stage: &str) -> Result<String, TopicError> {
    validate_stage(stage)?;
    Ok(format!("{RULES_PREFIX}{TELEMETRY_RULE_PREFIX}{stage}"))
}

/// Checks one topic level from the network (an `orgId`): non-empty, no `/`, `+`, `#` or NUL.
pub fn validate_level(level: &str) -> Result<(), TopicError> {
    let err = |reason| TopicError::Level {
        topic: level.to_owned(),
        reason,
    };
    if level.is_empty() {
        return Err(err("it is empty"));
    }
    if level.len() > 128 {
        return Err(err("it is longer than 128 bytes"));
    }
    if level.contains(['/', '+', '#', '\0']) {
        return Err(err("it holds `/`, `+`, `#` or NUL"));
    }
    Ok(())
}

/// Checks the first levels of a topic (`telemetryTopic`): no wildcards, no empty level, at
/// most 200 bytes (AWS allows 256, and org and client id follow).
pub fn validate_topic_base(topic: &str) -> Result<(), TopicError> {
    let err = |reason| TopicError::Level {
        topic: topic.to_owned(),
        reason,
    };
    if topic.is_empty() || topic.split('/').any(str::is_empty) {
        return Err(err("it has an empty level"));
    }
    if topic.len() > 200 {
        return Err(err("it is longer than 200 bytes"));
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(err("it holds a wildcard or NUL"));
    }
    Ok(())
}

/// The gen-2+ telemetry topic `{base}/{org_id}/{client_id}`.
pub fn org_telemetry_topic(
    base: &str,
    org_id: &str,
    client_id: &str,
) -> Result<String, TopicError> {
    validate_topic_base(base)?;
    validate_level(org_id)?;
    validate_thing_name(client_id)?;
    Ok(format!("{base}/{org_id}/{client_id}"))
}

/// A basic-ingest topic taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestTopic<'a> {
    /// The rule name (third level).
    pub rule: &'a str,
    /// Levels after the rule name, if any (basic ingest allows them).
    pub rest: Option<&'a str>,
}

impl IngestTopic<'_> {
    /// The stage when the rule is the HDM telemetry rule.
    pub fn telemetry_stage(&self) -> Option<&str> {
        self.rule
            .strip_prefix(TELEMETRY_RULE_PREFIX)
            .filter(|s| validate_stage(s).is_ok())
    }
}

/// Parses `$aws/rules/{rule}[/...]`; `None` for any other topic.
pub fn parse_ingest(topic: &str) -> Option<IngestTopic<'_>> {
    let tail = topic.strip_prefix(RULES_PREFIX)?;
    let (rule, rest) = match tail.split_once('/') {
        Some((r, rest)) => (r, Some(rest)),
        None => (tail, None),
    };
    (!rule.is_empty()).then_some(IngestTopic { rule, rest })
}

/// A shadow request a client publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadowOp {
    /// `get`: the whole document.
    Get,
    /// `update`: change `desired` and/or `reported`.
    Update,
    /// `delete`: remove the shadow.
    Delete,
}

impl ShadowOp {
    /// The topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOp::Get => "get",
            ShadowOp::Update => "update",
            ShadowOp::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "get" => Some(ShadowOp::Get),
            "update" => Some(ShadowOp::Update),
            "delete" => Some(ShadowOp::Delete),
            _ => None,
        }
    }
}

/// A response topic's last level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadowReply {
    /// The request was applied.
    Accepted,
    /// The request was refused (error document).
    Rejected,
    /// `update/delta`: desired differs from reported.
    Delta,
    /// `update/documents`: previous and current document.
    Documents,
}

impl ShadowReply {
    /// The topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowReply::Accepted => "accepted",
            ShadowReply::Rejected => "rejected",
            ShadowReply::Delta => "delta",
            ShadowReply::Documents => "documents",
        }
    }

    fn parse(op: ShadowOp, s: &str) -> Option<Self> {
        let reply = match s {
            "accepted" => ShadowReply::Accepted,
            "rejected" => ShadowReply::Rejected,
            "delta" => ShadowReply::Delta,
            "documents" => ShadowReply::Documents,
            _ => return None,
        };
        let allowed = op == ShadowOp::Update
            || matches!(reply, ShadowReply::Accepted | ShadowReply::Rejected);
        allowed.then_some(reply)
    }
}

/// A shadow topic taken apart (request or response).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShadowTopic {
    /// The thing.
    pub thing: String,
    /// The named shadow, `None` for the classic (unnamed) shadow.
    pub shadow_name: Option<String>,
    /// The operation.
    pub op: ShadowOp,
    /// `None` for the request topic itself.
    pub reply: Option<ShadowReply>,
}

impl ShadowTopic {
    /// Parses a shadow topic; `None` for anything else (including invalid names).
    pub fn parse(topic: &str) -> Option<Self> {
        let tail = topic.strip_prefix(THINGS_PREFIX)?;
        let mut levels = tail.split('/');
        let thing = levels.next()?;
        validate_thing_name(thing).ok()?;
        if levels.next()? != "shadow" {
            return None;
        }
        let mut next = levels.next()?;
        let mut shadow_name = None;
        if next == "name" {
            let name = levels.next()?;
            if !valid_shadow_name(name) {
                return None;
            }
            shadow_name = Some(name.to_owned());
            next = levels.next()?;
        }
        let op = ShadowOp::parse(next)?;
        let reply = match levels.next() {
            None => None,
            Some(r) => Some(ShadowReply::parse(op, r)?),
        };
        if levels.next().is_some() {
            return None;
        }
        Some(ShadowTopic {
            thing: thing.to_owned(),
            shadow_name,
            op,
            reply,
        })
    }

    /// The topic string.
    pub fn to_topic(&self) -> String {
        let mut t = prefix(&self.thing, self.shadow_name.as_deref());
        t.push('/');
        t.push_str(self.op.as_str());
        if let Some(r) = self.reply {
            t.push('/');
            t.push_str(r.as_str());
        }
        t
    }

    /// The same shadow and operation with another reply.
    #[must_use]
    pub fn with_reply(&self, reply: ShadowReply) -> Self {
        ShadowTopic {
            reply: Some(reply),
            ..self.clone()
        }
    }
}

fn prefix(thing: &str, shadow_name: Option<&str>) -> String {
    match shadow_name {
        Some(n) => format!("{THINGS_PREFIX}{thing}/shadow/name/{n}"),
        None => format!("{THINGS_PREFIX}{thing}/shadow"),
    }
}

/// The shadow topics of one thing's shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowTopics {
    thing: String,
    shadow_name: Option<String>,
}

impl ShadowTopics {
    /// Topics of `thing`'s classic shadow, or of its named shadow `shadow_name`.
    pub fn new(thing: &str, shadow_name: Option<&str>) -> Result<Self, TopicError> {
        validate_thing_name(thing)?;
        if let Some(n) = shadow_name
            && !valid_shadow_name(n)
        {
            return Err(TopicError::Thing {
                name: thing.to_owned(),
                reason: format!(
                    "shadow name `{n}` must be 1 to {MAX_SHADOW_NAME} characters of `a-zA-Z0-9:_-`"
                ),
            });
        }
        Ok(ShadowTopics {
            thing: thing.to_owned(),
            shadow_name: shadow_name.map(str::to_owned),
        })
    }

    /// The thing.
    pub fn thing(&self) -> &str {
        &self.thing
    }

    /// A topic of this shadow.
    pub fn topic(&self, op: ShadowOp, reply: Option<ShadowReply>) -> String {
        ShadowTopic {
            thing: self.thing.clone(),
            shadow_name: self.shadow_name.clone(),
            op,
            reply,
        }
        .to_topic()
    }

    /// Parses `topic` if it belongs to this shadow.
    pub fn parse(&self, topic: &str) -> Option<ShadowTopic> {
        ShadowTopic::parse(topic)
            .filter(|t| t.thing == self.thing && t.shadow_name == self.shadow_name)
    }

    /// The eight response topics a device subscribes to before its first request (one
    /// SUBSCRIBE: AWS allows 8 filters per packet).
    pub fn response_topics(&self) -> Vec<String> {
        use ShadowOp::{Delete, Get, Update};
        use ShadowReply::{Accepted, Delta, Documents, Rejected};
        [
            (Get, Accepted),
            (Get, Rejected),
            (Update, Accepted),
            (Update, Rejected),
            (Update, Delta),
            (Update, Documents),
            (Delete, Accepted),
            (Delete, Rejected),
        ]
        .into_iter()
        .map(|(op, r)| self.topic(op, Some(r)))
        .collect()
    }
}

/// Whether a topic is reserved by AWS (`$aws/...`).
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with(AWS_PREFIX)
}

/// Whether a subscription filter could match a basic-ingest topic (`$aws/rules/...`), which
/// nobody may subscribe to.
pub fn filter_may_match_rules(filter: &str) -> bool {
    let mut levels = filter.split('/');
    matches!(
        (levels.next(), levels.next()),
        (Some("$aws"), Some("rules" | "+" | "#"))
    )
}

/// The filters the platform side listens on: every shadow request of every thing (classic and
/// named) and every basic-ingest rule.
pub fn cloud_filters() -> Vec<String> {
    let mut f: Vec<String> = ["get", "update", "delete"]
        .iter()
        .flat_map(|op| {
            [
                format!("{THINGS_PREFIX}+/shadow/{op}"),
                format!("{THINGS_PREFIX}+/shadow/name/+/{op}"),
            ]
        })
        .collect();
    f.push(format!("{RULES_PREFIX}#"));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_topic_per_stage() {
        assert_eq!(
            telemetry_topic("stg").unwrap(),
            "$aws/rules/iot_data_platform_telemetry_stg"
        );
        assert!(telemetry_topic("a/b").is_err());
        assert!(telemetry_topic("").is_err());
        assert!(telemetry_topic("#").is_err());
    }

    #[test]
    fn org_topic_per_generation_2() {
        assert_eq!(
            org_telemetry_topic(
                "$aws/rules/iot_data_platform_telemetry_stg",
                "org-1",
                "hdm-1"
            )
            .unwrap(),
            "$aws/rules/iot_data_platform_telemetry_stg/org-1/hdm-1"
        );
        assert!(org_telemetry_topic("a/#", "o", "c").is_err());
        assert!(org_telemetry_topic("a//b", "o", "c").is_err());
        assert!(org_telemetry_topic("a", "o/p", "c").is_err());
        assert!(org_telemetry_topic("a", "o", "c+").is_err());
        let t = parse_ingest("$aws/rules/iot_data_platform_telemetry_stg/org-1/hdm-1").unwrap();
        assert_eq!(
            (t.telemetry_stage(), t.rest),
            (Some("stg"), Some("org-1/hdm-1"))
        );
    }

    #[test]
    fn ingest_topics_parse_with_and_without_suffix() {
        let t = parse_ingest("$aws/rules/iot_data_platform_telemetry_dev").unwrap();
        assert_eq!(t.telemetry_stage(), Some("dev"));
        assert_eq!(t.rest, None);
        let t = parse_ingest("$aws/rules/BuildingManager/Buildings/Building5").unwrap();
        assert_eq!(t.rule, "BuildingManager");
        assert_eq!(t.rest, Some("Buildings/Building5"));
        assert_eq!(t.telemetry_stage(), None);
        assert!(parse_ingest("$aws/rules/").is_none());
        assert!(parse_ingest("$aws/things/x/shadow/get").is_none());
    }

    #[test]
    fn shadow_topics_round_trip() {
        for s in [
            "$aws/things/thing-1/shadow/get",
            "$aws/things/thing-1/shadow/update/delta",
            "$aws/things/t/shadow/name/simShadow1/delete/accepted",
            "$aws/things/t/shadow/update/documents",
        ] {
            let t = ShadowTopic::parse(s).unwrap();
            assert_eq!(t.to_topic(), s);
        }
        for bad in [
            "$aws/things/t/shadow/get/delta",
            "$aws/things/t/shadow/frob",
            "$aws/things/t/shadow/update/accepted/x",
            "$aws/things/+/shadow/get",
            "$aws/things//shadow/get",
            "$aws/things/t/shadow/name//get",
            "$aws/things/t/shadow",
            "things/t/shadow/get",
        ] {
            assert!(ShadowTopic::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn filters_that_reach_basic_ingest() {
        for f in ["$aws/rules/x", "$aws/#", "$aws/+/x", "$aws/rules/#"] {
            assert!(filter_may_match_rules(f), "{f}");
        }
        for f in ["#", "+/rules/x", "$aws/things/t/shadow/#", "$aws"] {
            assert!(!filter_may_match_rules(f), "{f}");
        }
    }

    #[test]
    fn eight_response_topics() {
        let t = ShadowTopics::new("thing-1", None).unwrap();
        let r = t.response_topics();
        assert_eq!(r.len(), 8);
        assert!(r.contains(&"$aws/things/thing-1/shadow/update/delta".to_owned()));
        assert!(r.iter().all(|x| t.parse(x).is_some()));
        assert!(ShadowTopics::new("a/b", None).is_err());
        assert!(ShadowTopics::new("t", Some("n#")).is_err());
    }

    #[test]
    fn thing_names_follow_aws_rules() {
        assert!(validate_thing_name("hdm-0123:abc_D").is_ok());
        assert!(validate_thing_name(&"x".repeat(129)).is_err());
        let e = validate_thing_name("a b").unwrap_err().to_string();
        assert!(e.contains("' '"), "{e}");
    }
}
