//! Topic names of message 1.0 (Azure IoT Hub topics): D2C and C2D come from `sync`'s `p.pub` /
//! `p.sub` (with the Azure defaults when absent); the twin topics are fixed (the SDK's
//! `assets/config.json`). The only place topic strings are built or taken apart.
//!
//! Twin request ids (`$rid`): the agent writes `<uniqueId>:<n>` so that on a shared broker (where
//! every twin answer reaches every subscriber, unlike IoT Hub's per-connection topics) the
//! answer can be matched to the device; the SDK's `$rid=1`/`$rid=0` are understood too.

use url::form_urlencoded;

use super::sync::ProtocolInfo;

/// Prefix of reported-property patches.
pub const TWIN_REPORTED_PREFIX: &str = "$iothub/twin/PATCH/properties/reported/";
/// Prefix of desired-property patches.
pub const TWIN_DESIRED_PREFIX: &str = "$iothub/twin/PATCH/properties/desired/";
/// Filter for desired-property patches.
pub const TWIN_DESIRED_FILTER: &str = "$iothub/twin/PATCH/properties/desired/#";
/// Prefix of full-twin requests.
pub const TWIN_GET_PREFIX: &str = "$iothub/twin/GET/";
/// Prefix of twin answers.
pub const TWIN_RES_PREFIX: &str = "$iothub/twin/res/";
/// Filter for Azure direct methods (subscribed by the std SDK; allowed, not used here).
pub const METHODS_FILTER: &str = "$iothub/methods/POST/#";
/// Filter for twin answers.
pub const TWIN_RES_FILTER: &str = "$iothub/twin/res/#";

/// Percent-encodes everything but unreserved characters (never `+` or `#`, which are MQTT
/// wildcards, and never `/`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// IoT Hub's D2C topic of a device: `devices/{id}/messages/events/`.
pub fn azure_d2c(unique_id: &str) -> String {
    format!("devices/{unique_id}/messages/events/")
}

/// IoT Hub's C2D filter of a device: `devices/{id}/messages/devicebound/#`.
pub fn azure_c2d_filter(unique_id: &str) -> String {
    format!("devices/{unique_id}/messages/devicebound/#")
}

/// Where a device publishes: `p.pub`, or IoT Hub's default.
pub fn d2c_topic(p: &ProtocolInfo, unique_id: &str) -> String {
    if p.publish.is_empty() {
        azure_d2c(unique_id)
    } else {
        p.publish.clone()
    }
}

/// Where a device listens for commands: `p.sub`, or IoT Hub's default.
pub fn c2d_filter(p: &ProtocolInfo, unique_id: &str) -> String {
    if p.sub.is_empty() {
        azure_c2d_filter(unique_id)
    } else {
        p.sub.clone()
    }
}

/// Filter for every device's D2C messages (the cloud side).
pub const D2C_FILTER: &str = "devices/+/messages/events/#";

/// The topic IoT Hub delivers a C2D message to `device` on.
pub fn c2d_topic(device: &str) -> String {
    let to = encode(&format!("/devices/{device}/messages/deviceBound"));
    format!("devices/{device}/messages/devicebound/%24.to={to}")
}

/// The device id in a D2C topic (`devices/{id}/messages/events/...`).
pub fn device_of_d2c(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("devices/")?;
    let (id, tail) = rest.split_once('/')?;
    (tail.starts_with("messages/events") && !id.is_empty()).then_some(id)
}

/// Whether `topic` is a C2D topic.
pub fn is_c2d(topic: &str) -> bool {
    topic.starts_with("devices/") && topic.contains("/messages/devicebound")
}

/// A twin request id for `device`'s `n`th request.
pub fn rid(device: &str, n: u64) -> String {
    format!("{}:{n}", encode(device))
}

/// The device a request id names (`None` for the SDK's plain numbers). Takes the decoded value
/// (as [`query_param`] returns it).
pub fn device_of_rid(rid: &str) -> Option<String> {
    let (d, n) = rid.rsplit_once(':')?;
    n.parse::<u64>().ok()?;
    (!d.is_empty()).then(|| d.to_owned())
}

/// Reported-property patch topic.
pub fn twin_reported(rid: &str) -> String {
    format!("{TWIN_REPORTED_PREFIX}?$rid={rid}")
}

/// Full-twin request topic.
pub fn twin_get(rid: &str) -> String {
    format!("{TWIN_GET_PREFIX}?$rid={rid}")
}

/// Twin answer topic.
pub fn twin_res(status: u16, rid: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{TWIN_RES_PREFIX}{status}/?$rid={rid}&$version={v}"),
        None => format!("{TWIN_RES_PREFIX}{status}/?$rid={rid}"),
    }
}

/// Desired-property patch topic; `device` (a simulator extension) names the target.
pub fn twin_desired(version: u64, device: Option<&str>) -> String {
    match device {
        Some(d) => format!(
            "{TWIN_DESIRED_PREFIX}?$version={version}&deviceId={}",
            encode(d)
        ),
        None => format!("{TWIN_DESIRED_PREFIX}?$version={version}"),
    }
}

/// The query parameters of a topic (`...?$rid=1&$version=3`).
pub fn query(topic: &str) -> Vec<(String, String)> {
    topic.split_once('?').map_or_else(Vec::new, |(_, q)| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
}

/// One query parameter.
pub fn query_param(topic: &str, key: &str) -> Option<String> {
    query(topic)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The status of a twin answer topic.
pub fn twin_res_status(topic: &str) -> Option<u16> {
    topic
        .strip_prefix(TWIN_RES_PREFIX)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_topics_and_defaults() {
        let p = ProtocolInfo {
            publish: "devices/d1/messages/events/".into(),
            sub: "devices/d1/messages/devicebound/#".into(),
            ..ProtocolInfo::default()
        };
        assert_eq!(d2c_topic(&p, "x"), "devices/d1/messages/events/");
        assert_eq!(
            c2d_filter(&ProtocolInfo::default(), "x"),
            "devices/x/messages/devicebound/#"
        );
        assert_eq!(device_of_d2c("devices/d1/messages/events/"), Some("d1"));
        assert_eq!(device_of_d2c("devices//messages/events/"), None);
        assert_eq!(device_of_d2c("other/d1"), None);
        let t = c2d_topic("d1");
        assert!(
            is_c2d(&t) && transport::topic::matches("devices/d1/messages/devicebound/#", &t),
            "{t}"
        );
    }

    #[test]
    fn twin_topics_and_request_ids() {
        let r = rid("gw 01+#", 3);
        let t = twin_reported(&r);
        assert!(transport::topic::validate_name(&t).is_ok(), "{t}");
        let back = query_param(&t, "$rid").unwrap();
        assert_eq!(back, "gw 01+#:3");
        assert_eq!(device_of_rid(&back).as_deref(), Some("gw 01+#"));
        assert_eq!(device_of_rid("1"), None);
        assert_eq!(twin_res_status(&twin_res(204, "1", Some(4))), Some(204));
        assert_eq!(
            query_param(&twin_res(200, "0", Some(4)), "$version").as_deref(),
            Some("4")
        );
        assert_eq!(
            query_param(&twin_desired(2, Some("d&1")), "deviceId").as_deref(),
            Some("d&1")
        );
        assert!(transport::topic::matches(
            TWIN_DESIRED_FILTER,
            &twin_desired(2, None)
        ));
        assert!(transport::topic::matches(
            TWIN_RES_FILTER,
            &twin_res(200, "x:1", None)
        ));
    }
}
