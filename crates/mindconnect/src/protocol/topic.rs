//! MindConnect MQTT topic strings (EU1 tenant-client structure, `tc/{tenant}/{clientId}/o|i/…`)
//! and routing by exact comparison of topic levels — never substring tests, so a tenant or
//! client id containing `ms` or `cmd_v3` cannot be misrouted. Pure: no I/O.

/// The designator of the tenant-client topic structure.
pub const DESIGNATOR: &str = "tc";

/// Who publishes on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `o`: the agent publishes, the platform listens.
    Out,
    /// `i`: the platform publishes, the agent subscribes.
    In,
}

impl Direction {
    /// The topic level (`o` or `i`).
    pub fn level(self) -> &'static str {
        match self {
            Direction::Out => "o",
            Direction::In => "i",
        }
    }
}

/// Every topic of the v3 protocol this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `o/amo_v3/m`: publish an asset model.
    Model,
    /// `i/amo_v3/ms`: model creation results.
    ModelStatus,
    /// `o/amo_v3/i`: instantiate a model.
    Instantiate,
    /// `i/amo_v3/ip`: instantiation progress and result.
    InstanceProgress,
    /// `o/mc_v3/ts`: timeseries.
    Timeseries,
    /// `o/mc_v3/e`: events.
    Event,
    /// `o/mc_v3/f`: small files, base64 in JSON.
    File,
    /// `o/agm_v3/t`: agent access token request.
    TokenRequest,
    /// `i/agm_v3/tr`: agent access token response.
    TokenResponse,
    /// `i/cmd_v3/c`: a command for the agent.
    Command,
    /// `o/cmd_v3/u`: command execution status.
    CommandStatus,
    /// `o/amo_v4/m`: ask for the cloud model (v4 model synchronisation).
    V4Download,
    /// `i/amo_v4/m`: where the cloud model is (`data.content`).
    V4Model,
    /// `o/amo_v4/mi`: create or update the model and instantiate it, in one step.
    V4Instantiate,
    /// `i/amo_v4/mip`: progress and result of `o/amo_v4/mi`.
    V4Progress,
}

impl Channel {
    /// All channels.
    pub const ALL: [Channel; 15] = [
        Channel::Model,
        Channel::ModelStatus,
        Channel::Instantiate,
        Channel::InstanceProgress,
        Channel::Timeseries,
        Channel::Event,
        Channel::File,
        Channel::TokenRequest,
        Channel::TokenResponse,
        Channel::Command,
        Channel::CommandStatus,
        Channel::V4Download,
        Channel::V4Model,
        Channel::V4Instantiate,
        Channel::V4Progress,
    ];

    /// What v4 model synchronisation subscribes to besides (the 2024 sample's `i/amo_v4/m`
    /// and `i/amo_v4/mip`).
    pub const V4_SUBSCRIPTIONS: [Channel; 2] = [Channel::V4Model, Channel::V4Progress];

    /// The subscriptions of the agent (the sample's `on_connect`, sent as one SUBSCRIBE).
    pub const AGENT_SUBSCRIPTIONS: [Channel; 3] = [
        Channel::Command,
        Channel::InstanceProgress,
        Channel::TokenResponse,
    ];

    /// The subscriptions of the model publisher.
    pub const MODEL_SUBSCRIPTIONS: [Channel; 2] = [Channel::ModelStatus, Channel::InstanceProgress];

    /// `(direction, app, leaf)` of this channel.
    pub fn parts(self) -> (Direction, &'static str, &'static str) {
        use Direction::{In, Out};
        match self {
            Channel::Model => (Out, "amo_v3", "m"),
            Channel::ModelStatus => (In, "amo_v3", "ms"),
            Channel::Instantiate => (Out, "amo_v3", "i"),
            Channel::InstanceProgress => (In, "amo_v3", "ip"),
            Channel::Timeseries => (Out, "mc_v3", "ts"),
            Channel::Event => (Out, "mc_v3", "e"),
            Channel::File => (Out, "mc_v3", "f"),
            Channel::TokenRequest => (Out, "agm_v3", "t"),
            Channel::TokenResponse => (In, "agm_v3", "tr"),
            Channel::Command => (In, "cmd_v3", "c"),
            Channel::CommandStatus => (Out, "cmd_v3", "u"),
            Channel::V4Download => (Out, "amo_v4", "m"),
            Channel::V4Model => (In, "amo_v4", "m"),
            Channel::V4Instantiate => (Out, "amo_v4", "mi"),
            Channel::V4Progress => (In, "amo_v4", "mip"),
        }
    }

    /// Who publishes on it.
    pub fn direction(self) -> Direction {
        self.parts().0
    }

    /// The last three levels, e.g. `o/amo_v3/m`.
    pub fn suffix(self) -> String {
        let (d, app, leaf) = self.parts();
        format!("{}/{app}/{leaf}", d.level())
    }

    fn from_levels(direction: &str, app: &str, leaf: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| {
            let (d, a, l) = c.parts();
            d.level() == direction && a == app && l == leaf
        })
    }
}

/// A tenant or client id that cannot be a topic level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Empty.
    #[error("{what} is empty; MindConnect topics need it as a level (tc/<tenant>/<clientId>/...)")]
    Empty {
        /// `TENANT_ID` or `CLIENT_ID`.
        what: &'static str,
    },
    /// Contains `/`, `+`, `#` or NUL.
    #[error("{what} `{value}` contains `{ch}`, which cannot appear inside one MQTT topic level")]
    BadChar {
        /// `TENANT_ID` or `CLIENT_ID`.
        what: &'static str,
        /// The value.
        value: String,
        /// The offending character.
        ch: char,
    },
}

fn check_level(what: &'static str, value: &str) -> Result<(), TopicError> {
    if value.is_empty() {
        return Err(TopicError::Empty { what });
    }
    if let Some(ch) = value.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Err(TopicError::BadChar {
            what,
            value: value.to_owned(),
            ch,
        });
    }
    Ok(())
}

/// The topics of one agent (`tc/{tenant}/{clientId}/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    tenant: String,
    client_id: String,
}

impl Topics {
    /// Topics for `client_id` of `tenant`; both must be usable as single topic levels.
    pub fn new(tenant: &str, client_id: &str) -> Result<Self, TopicError> {
        check_level("TENANT_ID", tenant)?;
        check_level("CLIENT_ID", client_id)?;
        Ok(Topics {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The full topic of `channel`.
    pub fn topic(&self, channel: Channel) -> String {
        format!(
            "{DESIGNATOR}/{}/{}/{}",
            self.tenant,
            self.client_id,
            channel.suffix()
        )
    }

    /// Which of this agent's channels `topic` is, by exact comparison of every level.
    pub fn route(&self, topic: &str) -> Option<Channel> {
        let a = parse(topic)?;
        (a.tenant == self.tenant && a.client_id == self.client_id).then_some(a.channel)
    }
}

/// A topic taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressed<'a> {
    /// Tenant level.
    pub tenant: &'a str,
    /// Client id level.
    pub client_id: &'a str,
    /// Which channel.
    pub channel: Channel,
}

/// Splits `tc/{tenant}/{clientId}/{o|i}/{app}/{leaf}`; `None` for anything else (more or fewer
/// levels, another designator, an unknown app or leaf, empty ids).
pub fn parse(topic: &str) -> Option<Addressed<'_>> {
    let mut it = topic.split('/');
    let (Some(DESIGNATOR), Some(tenant), Some(client_id), Some(d), Some(app), Some(leaf), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return None;
    };
    if tenant.is_empty() || client_id.is_empty() {
        return None;
    }
    Some(Addressed {
        tenant,
        client_id,
        channel: Channel::from_levels(d, app, leaf)?,
    })
}

/// Whether `topic_or_filter` lies inside `tc/{tenant}/{client_id}/{direction}/` (level by level;
/// wildcards are allowed only after that prefix).
pub fn within_namespace(
    topic_or_filter: &str,
    tenant: &str,
    client_id: &str,
    direction: Direction,
) -> bool {
    let mut it = topic_or_filter.split('/');
    it.next() == Some(DESIGNATOR)
        && it.next() == Some(tenant)
        && it.next() == Some(client_id)
        && it.next() == Some(direction.level())
        && it.next().is_some_and(|rest| !rest.is_empty())
}

/// The filters the platform side subscribes to: everything agents publish, and the commands
/// operators deliver (so the platform knows which jobs exist).
pub fn platform_filters() -> Vec<String> {
    vec![
        format!("{DESIGNATOR}/+/+/o/#"),
        format!("{DESIGNATOR}/+/+/{}", Channel::Command.suffix()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topics_match_the_documented_table() {
        let t = Topics::new("tenantid", "tenantid_mqttagent").unwrap();
        let expect = [
            (Channel::Model, "tc/tenantid/tenantid_mqttagent/o/amo_v3/m"),
            (
                Channel::ModelStatus,
                "tc/tenantid/tenantid_mqttagent/i/amo_v3/ms",
            ),
            (
                Channel::Instantiate,
                "tc/tenantid/tenantid_mqttagent/o/amo_v3/i",
            ),
            (
                Channel::InstanceProgress,
                "tc/tenantid/tenantid_mqttagent/i/amo_v3/ip",
            ),
            (
                Channel::Timeseries,
                "tc/tenantid/tenantid_mqttagent/o/mc_v3/ts",
            ),
            (Channel::Event, "tc/tenantid/tenantid_mqttagent/o/mc_v3/e"),
            (Channel::File, "tc/tenantid/tenantid_mqttagent/o/mc_v3/f"),
            (
                Channel::TokenRequest,
                "tc/tenantid/tenantid_mqttagent/o/agm_v3/t",
            ),
            (
                Channel::TokenResponse,
                "tc/tenantid/tenantid_mqttagent/i/agm_v3/tr",
            ),
            (
                Channel::Command,
                "tc/tenantid/tenantid_mqttagent/i/cmd_v3/c",
            ),
            (
                Channel::CommandStatus,
                "tc/tenantid/tenantid_mqttagent/o/cmd_v3/u",
            ),
            (
                Channel::V4Download,
                "tc/tenantid/tenantid_mqttagent/o/amo_v4/m",
            ),
            (
                Channel::V4Model,
                "tc/tenantid/tenantid_mqttagent/i/amo_v4/m",
            ),
            (
                Channel::V4Instantiate,
                "tc/tenantid/tenantid_mqttagent/o/amo_v4/mi",
            ),
            (
                Channel::V4Progress,
                "tc/tenantid/tenantid_mqttagent/i/amo_v4/mip",
            ),
        ];
        for (c, s) in expect {
            assert_eq!(t.topic(c), s);
            assert_eq!(t.route(s), Some(c));
        }
    }

    #[test]
    fn routing_is_exact_not_substring() {
        // The sample's `"ms" in topic` would route all of these to the model handler.
        let t = Topics::new("ms", "ms_cmd_v3").unwrap();
        assert_eq!(
            t.route("tc/ms/ms_cmd_v3/i/amo_v3/ip"),
            Some(Channel::InstanceProgress)
        );
        assert_eq!(
            t.route("tc/ms/ms_cmd_v3/i/amo_v3/ms"),
            Some(Channel::ModelStatus)
        );
        assert_eq!(t.route("tc/ms/ms_cmd_v3/i/amo_v3/msx"), None);
        assert_eq!(t.route("tc/ms/ms_cmd_v3/i/amo_v3/ms/extra"), None);
        assert_eq!(t.route("tc/ms/other/i/amo_v3/ms"), None);
        assert_eq!(t.route("xc/ms/ms_cmd_v3/i/amo_v3/ms"), None);
        assert_eq!(t.route("tc/ms/ms_cmd_v3/o/amo_v3/ms"), None);
    }

    #[test]
    fn ids_that_break_topics_are_refused() {
        assert!(matches!(
            Topics::new("", "c"),
            Err(TopicError::Empty { what: "TENANT_ID" })
        ));
        let e = Topics::new("t", "a/b").unwrap_err();
        assert!(
            e.to_string().contains("CLIENT_ID `a/b` contains `/`"),
            "{e}"
        );
        assert!(Topics::new("t+", "c").is_err());
        assert!(Topics::new("t", "c#").is_err());
    }

    #[test]
    fn namespace_checks_level_by_level() {
        assert!(within_namespace(
            "tc/t/t_a/o/mc_v3/ts",
            "t",
            "t_a",
            Direction::Out
        ));
        assert!(within_namespace("tc/t/t_a/i/#", "t", "t_a", Direction::In));
        assert!(!within_namespace("tc/t/t_a/i", "t", "t_a", Direction::In));
        assert!(!within_namespace(
            "tc/t/t_ab/o/mc_v3/ts",
            "t",
            "t_a",
            Direction::Out
        ));
        assert!(!within_namespace("tc/+/t_a/i/#", "t", "t_a", Direction::In));
        assert!(!within_namespace(
            "tc/t/t_a/o/mc_v3/ts",
            "t",
            "t_a",
            Direction::In
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_roundtrips(s in "\\PC{0,80}") {
            if let Some(a) = parse(&s) {
                let t = Topics::new(a.tenant, a.client_id);
                if let Ok(t) = t {
                    prop_assert_eq!(t.topic(a.channel), s);
                }
            }
        }

        #[test]
        fn built_topics_route_back(tenant in "[a-z0-9_]{1,12}", client in "[a-z0-9_.-]{1,20}") {
            let t = Topics::new(&tenant, &client).unwrap();
            for c in Channel::ALL {
                prop_assert_eq!(t.route(&t.topic(c)), Some(c));
            }
        }
    }
}
