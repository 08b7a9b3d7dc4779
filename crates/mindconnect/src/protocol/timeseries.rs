//! Timeseries (`o/mc_v3/ts`): an array of samplings, each a timestamp and values of data points
//! (`dataPointId`, `value`, `qualityCode`; values and quality codes are strings in the docs).
//! The platform sends no acknowledgement for it. Pure.

use serde::{Deserialize, Serialize};

use super::envelope::Scalar;

/// `{"timeseries": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesMessage {
    /// Samplings.
    pub timeseries: Vec<Sampling>,
}

/// One timestamp with its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// Values.
    pub values: Vec<PointValue>,
}

/// One data point's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointValue {
    /// Data point id (mapped by the asset model).
    pub data_point_id: String,
    /// Value (a string in the documented form).
    pub value: Scalar,
    /// Quality code (`"0"` = good).
    #[serde(default = "good")]
    pub quality_code: Scalar,
}

fn good() -> Scalar {
    Scalar::Text("0".into())
}

impl TimeseriesMessage {
    /// One sampling at `timestamp` with `values` as strings and quality code `"0"`.
    pub fn single<'a>(
        timestamp: String,
        values: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Self {
        TimeseriesMessage {
            timeseries: vec![Sampling {
                timestamp,
                values: values
                    .into_iter()
                    .map(|(id, v)| PointValue {
                        data_point_id: id.to_owned(),
                        value: Scalar::Text(v),
                        quality_code: good(),
                    })
                    .collect(),
            }],
        }
    }

    /// Number of values over all samplings.
    pub fn value_count(&self) -> usize {
        self.timeseries.iter().map(|s| s.values.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{decode, encode, strategies};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_example_decodes() {
        // protocols/mindconnect.md 3.6, from [D-ts].
        let m: TimeseriesMessage = decode(
            "timeseries",
            br#"{"timeseries":[{"timestamp":"2020-08-01T00:15:10.100Z","values":[
           {"dataPointId":"rotationPerMinute","value":"600","qualityCode":"0"},
           {"dataPointId":"temperature","value":"1.3","qualityCode":"-1"}]}]}"#,
        )
        .unwrap();
        assert_eq!(m.value_count(), 2);
        assert_eq!(
            m.timeseries[0].values[1].quality_code,
            Scalar::Text("-1".into())
        );
    }

    #[test]
    fn single_builds_the_documented_string_form() {
        let m = TimeseriesMessage::single(
            "2020-08-01T00:15:10.100Z".into(),
            [("temperature", "31".to_owned())],
        );
        assert_eq!(
            String::from_utf8(encode(&m)).unwrap(),
            r#"{"timeseries":[{"timestamp":"2020-08-01T00:15:10.100Z","values":[{"dataPointId":"temperature","value":"31","qualityCode":"0"}]}]}"#
        );
    }

    proptest! {
        #[test]
        fn roundtrips(s in proptest::collection::vec((strategies::text(), proptest::collection::vec((strategies::text(), strategies::scalar(), strategies::scalar()), 0..4)), 0..4)) {
            let m = TimeseriesMessage { timeseries: s.into_iter().map(|(timestamp, vs)| Sampling {
                timestamp,
                values: vs.into_iter().map(|(data_point_id, value, quality_code)| PointValue { data_point_id, value, quality_code }).collect(),
            }).collect() };
            prop_assert_eq!(decode::<TimeseriesMessage>("timeseries", &encode(&m)).unwrap(), m);
        }

        #[test]
        fn hostile_input_never_panics(bytes in strategies::hostile()) {
            let _ = decode::<TimeseriesMessage>("timeseries", &bytes);
        }
    }
}
