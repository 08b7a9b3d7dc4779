//! The custom data format ("Bring your data", Insights Hub's custom-topic API): the agent
//! registers a topic of its own over REST, adds JMESPath mappings from its JSON to asset
//! variables, then publishes arbitrary JSON to that topic. The rules the documentation states
//! for the topic: it contains the MQTT client id and has at most 7 levels. Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST {GW_URL}` + this registers a topic; `GET ...?mqttClientId=` lists them;
/// `POST .../{id}/mappings` adds a mapping.
pub const REGISTRATIONS_PATH: &str = "/api/mindconnectmqtt/v3/customTopicRegistrations";

/// The most levels a custom topic may have.
pub const MAX_LEVELS: usize = 7;

/// `{"mqttClientId", "topic"}`, the registration request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The agent's client id.
    pub mqtt_client_id: String,
    /// The custom topic.
    pub topic: String,
}

/// A registration as the platform answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// Its id (for the mappings).
    pub id: String,
    /// The agent's client id.
    pub mqtt_client_id: String,
    /// The custom topic.
    pub topic: String,
}

/// One mapping: JMESPath expressions that pick a variable's values and timestamps out of the
/// custom JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mapping {
    /// The asset.
    pub asset_id: String,
    /// The aspect.
    pub aspect_name: String,
    /// The variable.
    pub variable_name: String,
    /// JMESPath to the values.
    pub variable_value_expression: String,
    /// JMESPath to the timestamps.
    pub variable_timestamp_expression: String,
    /// How timestamps are read (`fromISO8601`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_converter: Option<String>,
}

/// Why a topic cannot be a custom topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("custom topic `{topic}` {why}")]
pub struct TopicRuleError {
    /// The topic (cut at 120 characters).
    pub topic: String,
    /// Which rule it breaks.
    pub why: String,
}

/// Checks the documented rules for `client_id`'s custom topic, plus what MQTT itself needs
/// of a topic to publish to (no wildcards, no empty levels) and that it stays out of the
/// platform's own `tc/` namespace.
pub fn check_topic(topic: &str, client_id: &str) -> Result<(), TopicRuleError> {
    let err = |why: String| TopicRuleError {
        topic: topic.chars().take(120).collect(),
        why,
    };
    let levels: Vec<&str> = topic.split('/').collect();
    if topic.contains(['+', '#', '\0']) {
        return Err(err(
            "has a wildcard or NUL; publish topics name one topic".into()
        ));
    }
    if levels.iter().any(|l| l.is_empty()) {
        return Err(err("has an empty level".into()));
    }
    if levels.len() > MAX_LEVELS {
        return Err(err(format!(
            "has {} levels; custom topics have at most {MAX_LEVELS}",
            levels.len()
        )));
    }
    if levels[0] == "tc" {
        return Err(err(
            "is under `tc/`, the platform's own topics; choose another first level (the sample uses clouddatastore/{clientId}/ts)".into(),
        ));
    }
    if !levels.contains(&client_id) {
        return Err(err(format!(
            "does not contain the client id `{client_id}` as a level (e.g. clouddatastore/{client_id}/ts)"
        )));
    }
    Ok(())
}

/// The registration of `topic` in a listing answer, whatever its envelope: a JSON array, or
/// an object holding one (`content`, `_embedded.*`).
pub fn find_registration(listing: &Value, topic: &str) -> Option<Registered> {
    match listing {
        Value::Array(items) => items.iter().find_map(|i| {
            serde_json::from_value::<Registered>(i.clone())
                .ok()
                .filter(|r| r.topic == topic)
        }),
        Value::Object(m) => m.values().find_map(|v| find_registration(v, topic)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_samples_topic_passes_and_broken_ones_say_why() {
        let c = "tenant_agent";
        assert_eq!(check_topic("clouddatastore/tenant_agent/ts", c), Ok(()));
        let why = |t: &str| check_topic(t, c).unwrap_err().why;
        assert!(why("clouddatastore/other/ts").contains("client id `tenant_agent`"));
        assert!(why("a/b/c/d/e/f/tenant_agent/h").contains("8 levels"));
        assert!(why("clouddatastore/+/ts").contains("wildcard"));
        assert!(why("tc/tenant/tenant_agent/o/x").contains("`tc/`"));
        assert!(why("x//tenant_agent").contains("empty level"));
    }

    #[test]
    fn a_registration_is_found_in_any_envelope() {
        let r = json!({"id": "r1", "mqttClientId": "c", "topic": "d/c/ts"});
        for listing in [
            json!([r.clone()]),
            json!({"_embedded": {"customTopicRegistrations": [r.clone()]}}),
            json!({"content": [{"id": "r0", "mqttClientId": "c", "topic": "d/c/other"}, r.clone()]}),
        ] {
            assert_eq!(find_registration(&listing, "d/c/ts").unwrap().id, "r1");
        }
        assert!(find_registration(&json!({"content": []}), "d/c/ts").is_none());
    }

    #[test]
    fn the_samples_mapping_reads_and_unknown_keys_are_refused() {
        let m: Mapping = serde_json::from_value(json!({"assetId": "a1", "aspectName": "Moisture", "variableName": "moisture",
            "variableValueExpression": "machines[].sources[].tags[?Key == 'moisture'].Values[][0]",
            "variableTimestampExpression": "machines[].sources[].tags[?Key == 'moisture'].timestamp[]",
            "timeConverter": "fromISO8601"})).unwrap();
        assert_eq!(m.time_converter.as_deref(), Some("fromISO8601"));
        assert!(
            serde_json::from_value::<Mapping>(json!({"assetId": "a1", "aspect": "x"})).is_err()
        );
    }

    proptest! {
        #[test]
        fn any_topic_is_judged_without_panicking(t in ".{0,200}", c in "[a-z_]{1,20}") {
            let _ = check_topic(&t, &c);
        }
    }
}
