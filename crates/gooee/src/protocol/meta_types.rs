//! The meta types edgewire knows, from `GooeeIOT/meta-definitions` as summarised in
//! `shared/protocols/gooee.md` §2.3 (JSON-schema type, minimum/maximum). Only these names get
//! their values checked; any other name that passes the name rule is accepted with any value,
//! since the full 613-definition list is not vendored (its licence is unclear). Pure data.

use serde_json::Value;

use super::error::{PayloadError, abridge};

/// The JSON-schema type of a meta value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetaType {
    /// `number`, with optional bounds.
    Number {
        /// `minimum`.
        min: Option<f64>,
        /// `maximum`.
        max: Option<f64>,
        /// `exclusiveMinimum: true` (the minimum itself is not allowed).
        exclusive_min: bool,
    },
    /// `boolean`.
    Boolean,
    /// `string`.
    String,
    /// `array`.
    Array,
    /// `object`.
    Object,
}

const NUM: MetaType = MetaType::Number {
    min: None,
    max: None,
    exclusive_min: false,
};

const fn range(min: f64, max: f64) -> MetaType {
    MetaType::Number {
        min: Some(min),
        max: Some(max),
        exclusive_min: false,
    }
}

/// Known metas: name and type (source: shared/protocols/gooee.md §2.3, from meta-definitions).
pub const KNOWN_METAS: &[(&str, MetaType)] = &[
    ("onoff", MetaType::Boolean),
    ("dim", range(0.0, 100.0)),
    ("is_online", MetaType::Boolean),
    ("als", range(0.0, 20_000.0)),
    ("temperature", NUM),
    ("space_temperature", NUM),
    ("space_co2", NUM),
    ("space_humidity", range(0.0, 100.0)),
    ("active_power", NUM),
    ("active_energy", NUM),
    ("power", NUM),
    (
        "power_factor",
        MetaType::Number {
            min: Some(0.0),
            max: Some(1.0),
            exclusive_min: true,
        },
    ),
    ("fault_code", NUM),
    ("fault_status", MetaType::Boolean),
    ("device_fault_status", MetaType::Boolean),
    ("fw_ver", MetaType::String),
    ("ip_address", MetaType::String),
    ("last_activity", MetaType::String),
    ("rgb", MetaType::Array),
    ("position", MetaType::Object),
];

/// The known type of `name`, if edgewire knows it.
pub fn known_type(name: &str) -> Option<MetaType> {
    KNOWN_METAS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

fn fmt_bound(x: f64) -> String {
    // Bounds are small whole numbers or simple fractions; print them without a trailing `.0`.
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

impl MetaType {
    /// What the type accepts, for messages: `a number from 0 to 100`, `true or false`, ...
    pub fn expected(self) -> &'static str {
        match self {
            MetaType::Number { .. } => "a number",
            MetaType::Boolean => "true or false",
            MetaType::String => "a string",
            MetaType::Array => "an array",
            MetaType::Object => "an object",
        }
    }

    /// The range of a bounded number, e.g. `0 to 100` or `above 0 up to 1`.
    pub fn range_text(self) -> Option<String> {
        match self {
            MetaType::Number {
                min,
                max,
                exclusive_min,
            } => {
                let lo = min.map(|m| {
                    if exclusive_min {
                        format!("above {}", fmt_bound(m))
                    } else {
                        format!("from {}", fmt_bound(m))
                    }
                });
                let hi = max.map(|m| format!("up to {}", fmt_bound(m)));
                match (lo, hi) {
                    (None, None) => None,
                    (Some(l), None) => Some(l),
                    (None, Some(h)) => Some(h),
                    (Some(l), Some(h)) => Some(format!("{l} {h}")),
                }
            }
            _ => None,
        }
    }

    /// Checks `value` of meta `name` at `position`.
    pub fn check(self, name: &str, value: &Value, position: &str) -> Result<(), PayloadError> {
        let wrong = || PayloadError::WrongType {
            position: position.to_owned(),
            name: name.to_owned(),
            expected: self.expected(),
            value: abridge(value),
        };
        match (self, value) {
            (
                MetaType::Number {
                    min,
                    max,
                    exclusive_min,
                },
                Value::Number(n),
            ) => {
                let x = n.as_f64().ok_or_else(wrong)?;
                let below = min.is_some_and(|m| if exclusive_min { x <= m } else { x < m });
                let above = max.is_some_and(|m| x > m);
                if below || above {
                    return Err(PayloadError::OutOfRange {
                        position: position.to_owned(),
                        name: name.to_owned(),
                        value: n.to_string(),
                        range: self.range_text().unwrap_or_default(),
                    });
                }
                Ok(())
            }
            (MetaType::Boolean, Value::Bool(_))
            | (MetaType::String, Value::String(_))
            | (MetaType::Array, Value::Array(_))
            | (MetaType::Object, Value::Object(_)) => Ok(()),
            _ => Err(wrong()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dim_is_a_percentage_and_power_factor_excludes_zero() {
        let dim = known_type("dim").unwrap();
        assert!(dim.check("dim", &json!(50), "[0]/value").is_ok());
        assert!(matches!(
            dim.check("dim", &json!(150), "[0]/value"),
            Err(PayloadError::OutOfRange { .. })
        ));
        assert!(matches!(
            dim.check("dim", &json!("50"), "[0]/value"),
            Err(PayloadError::WrongType { .. })
        ));
        let pf = known_type("power_factor").unwrap();
        assert!(pf.check("power_factor", &json!(0), "").is_err());
        assert!(pf.check("power_factor", &json!(1), "").is_ok());
        assert_eq!(pf.range_text().unwrap(), "above 0 up to 1");
        assert_eq!(dim.range_text().unwrap(), "from 0 up to 100");
    }

    #[test]
    fn every_known_name_passes_the_name_rule() {
        for (name, _) in KNOWN_METAS {
            assert!(super::super::meta::check_name(name).is_ok(), "{name}");
        }
    }
}
