//! MQTT topic names and filters: validation before anything is queued, and filter matching.
//! Pure functions.

/// Why a topic name or filter is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Empty string.
    #[error("topic is empty")]
    Empty,
    /// Longer than MQTT allows.
    #[error("topic `{0}…` is longer than 65,535 bytes")]
    TooLong(String),
    /// A publish topic with `+` or `#`.
    #[error(
        "topic `{0}` contains a wildcard (+ or #); wildcards are for subscribing, not publishing"
    )]
    WildcardInName(String),
    /// A filter whose wildcards are misplaced.
    #[error(
        "topic filter `{0}` is malformed: `+` must fill a whole level and `#` must be the last level"
    )]
    BadFilter(String),
    /// A NUL character.
    #[error("topic `{0}` contains a NUL character")]
    Nul(String),
}

fn common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > 65_535 {
        return Err(TopicError::TooLong(topic.chars().take(40).collect()));
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul(topic.replace('\0', "\\0")));
    }
    Ok(())
}

/// Checks a topic to publish on.
pub fn validate_name(topic: &str) -> Result<(), TopicError> {
    common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName(topic.to_owned()));
    }
    Ok(())
}

/// Checks a filter to subscribe to.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let bad_plus = level.contains('+') && *level != "+";
        let bad_hash = level.contains('#') && (*level != "#" || i != levels.len() - 1);
        if bad_plus || bad_hash {
            return Err(TopicError::BadFilter(filter.to_owned()));
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter` (MQTT 3.1.1 section 4.7; `$` topics only match filters that
/// start with the same level).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_filters() {
        assert!(validate_name("a/b").is_ok());
        assert!(matches!(
            validate_name("a/+"),
            Err(TopicError::WildcardInName(_))
        ));
        assert!(matches!(validate_name(""), Err(TopicError::Empty)));
        assert!(validate_filter("a/+/c/#").is_ok());
        assert!(validate_filter("#").is_ok());
        assert!(matches!(
            validate_filter("a/#/c"),
            Err(TopicError::BadFilter(_))
        ));
        assert!(matches!(
            validate_filter("a/b+"),
            Err(TopicError::BadFilter(_))
        ));
    }

    #[test]
    fn matching_follows_the_spec_examples() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+/+", "/finance"));
        assert!(!matches("#", "$SYS/broker"));
        assert!(matches("$SYS/#", "$SYS/broker"));
        assert!(!matches("a/b", "a/b/c"));
    }

    proptest! {
        #[test]
        fn a_topic_matches_itself_and_hash(topic in "[a-z0-9/]{1,30}") {
            prop_assert!(matches(&topic, &topic));
            prop_assert!(matches("#", &topic));
        }

        #[test]
        fn validation_never_panics(s in "\\PC{0,50}") {
            let _ = validate_name(&s);
            let _ = validate_filter(&s);
        }
    }
}
