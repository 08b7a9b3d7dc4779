//! Unit tests of the topic table, the checks, the builders and the routing.

use super::*;

#[test]
fn the_table_has_the_documented_rows() {
    assert_eq!(TOPICS.len(), 22);
    assert_eq!(TOPICS.iter().filter(|r| r.publish).count(), 14);
    assert!(TOPICS.iter().all(|r| r.subscribe));
    assert_eq!(TOPICS.iter().filter(|r| r.rejected).count(), 3);
}

#[test]
fn publish_check_follows_the_table() {
    assert!(check_publish("devices/d1/meta").is_ok());
    assert!(check_publish("spaces/s1/actions").is_ok());
    assert!(check_publish("areas/a/meta/headcount_out").is_ok());
    let e = check_publish("devices/d1/meta/temperature").unwrap_err();
    assert_eq!(e.matched, Some("devices/(:id)/meta/(:name)"));
    assert!(
        e.alternatives.contains(&"devices/d1/meta".to_owned()),
        "{e}"
    );
    let e = check_publish("buildings/b1/actions")
        .unwrap_err()
        .to_string();
    assert!(e.contains("subscribe-only"), "{e}");
    assert!(e.contains("buildings/b1/fault_alarms"), "{e}");
    let e = check_publish("foo/bar").unwrap_err().to_string();
    assert!(e.contains("not in Gooee's topic table"), "{e}");
    assert!(e.contains("devices/(:id)/meta"), "{e}");
    assert!(check_publish("devices//meta").is_err());
    assert!(check_publish("devices/d1/meta/rejected").is_err());
}

#[test]
fn subscribe_check_allows_variables_only_as_plus() {
    assert!(check_subscribe("devices/d1/meta/temperature").is_ok());
    assert!(check_subscribe("devices/+/meta").is_ok());
    assert!(check_subscribe("devices/d1/meta/+").is_ok());
    assert!(check_subscribe("buildings/b/actions/dim").is_ok());
    assert!(check_subscribe("devices/d1/fault_alarms/rejected").is_ok());
    assert!(check_subscribe("devices/d1/#").is_err());
    assert!(check_subscribe("+/d1/meta").is_err());
    assert!(check_subscribe("devices/d1/+").is_err());
    assert!(check_subscribe("users/u1").is_err());
}

#[test]
fn rejected_topics_exist_for_meta_and_fault_alarms_only() {
    assert_eq!(
        rejected_for("devices/d/meta").as_deref(),
        Some("devices/d/meta/rejected")
    );
    assert_eq!(
        rejected_for("buildings/b/fault_alarms").as_deref(),
        Some("buildings/b/fault_alarms/rejected")
    );
    assert_eq!(rejected_for("spaces/s/actions"), None);
    assert_eq!(rejected_for("areas/a/meta/head_count"), None);
}

#[test]
fn routes_cover_every_publishable_row() {
    for r in TOPICS.iter().filter(|r| r.publish) {
        let topic = r.pattern.replace("(:id)", "x1");
        assert!(route(&topic).is_some(), "{topic}");
    }
    assert_eq!(route("devices/x/meta/temperature"), None);
    assert_eq!(
        route("spaces/s/meta/head_count"),
        Some(Route::HeadCount {
            entity: Entity::Space,
            id: "s".into(),
            kind: HeadCountKind::HeadCount
        })
    );
}

#[test]
fn builders_refuse_levels_that_would_change_the_topic() {
    assert!(device_meta("a/b").is_err());
    assert!(device_meta("+").is_err());
    assert!(device_meta("").is_err());
    assert_eq!(device_meta("d-1").unwrap(), "devices/d-1/meta");
    assert!(action_type(Entity::Space, "s", "d#").is_err());
}
