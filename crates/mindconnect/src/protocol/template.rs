//! The seed's `example_json` templates as a typed step: each kind (model, instance, timeseries,
//! event) allows a known set of `<placeholder>`s (`<uuid>`, `<uuid_hex>`, `<tenantId>`,
//! `<model_name>`, `<curr_date_time>`, `<severity>`; in timeseries any other name is a data
//! point whose value the source supplies). Unknown placeholders and missing values are errors
//! that name the file, the line and the placeholder; values are JSON-escaped; the result must
//! be JSON. `${...}` parameters are the Asset Modeler's and are left alone. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Which template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `asset_model.json` → `o/amo_v3/m`.
    Model,
    /// `instance.json` → `o/amo_v3/i`.
    Instance,
    /// `timeseries.json` → `o/mc_v3/ts`.
    Timeseries,
    /// `event.json` → `o/mc_v3/e`.
    Event,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 4] = [Kind::Model, Kind::Instance, Kind::Timeseries, Kind::Event];

    /// The file name in `example_json/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Model => "asset_model.json",
            Kind::Instance => "instance.json",
            Kind::Timeseries => "timeseries.json",
            Kind::Event => "event.json",
        }
    }

    /// The named placeholders this kind allows.
    pub fn allowed(self) -> &'static [Placeholder] {
        use Placeholder::{CurrDateTime, ModelName, Severity, TenantId, Uuid, UuidHex};
        match self {
            Kind::Model => &[Uuid, TenantId, ModelName],
            Kind::Instance => &[Uuid, ModelName, TenantId],
            Kind::Timeseries => &[CurrDateTime],
            Kind::Event => &[Uuid, UuidHex, CurrDateTime, Severity],
        }
    }
}

/// A named placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    /// `<uuid>`: a random uuid4 (one per fill, the same at every occurrence).
    Uuid,
    /// `<uuid_hex>`: the same uuid as 32 hex digits.
    UuidHex,
    /// `<tenantId>`: `TENANT_ID`.
    TenantId,
    /// `<model_name>`: `MODEL_NAME`.
    ModelName,
    /// `<curr_date_time>`: now, RFC 3339 UTC.
    CurrDateTime,
    /// `<severity>`: 20, 30 or 40.
    Severity,
}

impl Placeholder {
    /// Its name between `<` and `>`.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Uuid => "uuid",
            Placeholder::UuidHex => "uuid_hex",
            Placeholder::TenantId => "tenantId",
            Placeholder::ModelName => "model_name",
            Placeholder::CurrDateTime => "curr_date_time",
            Placeholder::Severity => "severity",
        }
    }
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A placeholder this kind does not know.
    #[error(
        "{file}:{line}: unknown placeholder `<{name}>` in a {kind:?} template; allowed: {allowed}"
    )]
    Unknown {
        /// File.
        file: String,
        /// Kind.
        kind: Kind,
        /// 1-based line.
        line: usize,
        /// Placeholder name.
        name: String,
        /// Allowed names.
        allowed: String,
    },
    /// No value for a placeholder.
    #[error("{file}: no value for placeholder `<{name}>`{hint}")]
    Missing {
        /// File.
        file: String,
        /// Placeholder name.
        name: String,
        /// Where values come from.
        hint: String,
    },
    /// Not JSON after filling.
    #[error("{file}: not valid JSON after filling the placeholders: {reason}")]
    Json {
        /// File.
        file: String,
        /// serde's message with line and column.
        reason: String,
    },
    /// JSON, but not the payload shape.
    #[error("{file}: not a valid {what}: {reason}")]
    Shape {
        /// File.
        file: String,
        /// Expected payload.
        what: &'static str,
        /// serde's message naming the field.
        reason: String,
    },
}

/// A template read from `file`, its placeholders checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    kind: Kind,
    file: String,
    text: String,
    named: BTreeSet<Placeholder>,
    data_points: BTreeSet<String>,
}

/// Values to fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    named: BTreeMap<Placeholder, String>,
    data_points: BTreeMap<String, String>,
}

impl Values {
    /// No values.
    pub fn new() -> Self {
        Values::default()
    }

    /// Sets a named placeholder.
    #[must_use]
    pub fn with(mut self, p: Placeholder, value: impl Into<String>) -> Self {
        self.named.insert(p, value.into());
        self
    }

    /// Sets `<uuid>` and `<uuid_hex>` from one uuid.
    #[must_use]
    pub fn with_uuid(self, id: uuid::Uuid) -> Self {
        self.with(Placeholder::Uuid, id.hyphenated().to_string())
            .with(Placeholder::UuidHex, id.simple().to_string())
    }

    /// Sets a data point's value (timeseries templates).
    #[must_use]
    pub fn with_point(mut self, data_point: &str, value: impl Into<String>) -> Self {
        self.data_points.insert(data_point.to_owned(), value.into());
        self
    }
}

/// Finds `<name>` tokens: `(byte offset, name)`.
fn scan(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > start && j < bytes.len() && bytes[j] == b'>' && !bytes[start].is_ascii_digit() {
                out.push((i, &text[start..j]));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

impl Template {
    /// Checks `text` (read from `file`) as a `kind` template.
    pub fn parse(kind: Kind, file: &str, text: &str) -> Result<Template, TemplateError> {
        let mut named = BTreeSet::new();
        let mut data_points = BTreeSet::new();
        for (offset, name) in scan(text) {
            if let Some(p) = kind.allowed().iter().find(|p| p.name() == name) {
                named.insert(*p);
            } else if kind == Kind::Timeseries {
                data_points.insert(name.to_owned());
            } else {
                return Err(TemplateError::Unknown {
                    file: file.to_owned(),
                    kind,
                    line: text[..offset].matches('\n').count() + 1,
                    name: name.to_owned(),
                    allowed: kind
                        .allowed()
                        .iter()
                        .map(|p| format!("<{}>", p.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(Template {
            kind,
            file: file.to_owned(),
            text: text.to_owned(),
            named,
            data_points,
        })
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The file it came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Named placeholders used.
    pub fn placeholders(&self) -> &BTreeSet<Placeholder> {
        &self.named
    }

    /// Data point placeholders used (timeseries).
    pub fn data_points(&self) -> &BTreeSet<String> {
        &self.data_points
    }

    /// Fills every placeholder and parses the result as JSON.
    pub fn fill(&self, values: &Values) -> Result<Value, TemplateError> {
        let mut out = String::with_capacity(self.text.len());
        let mut last = 0;
        for (offset, name) in scan(&self.text) {
            let value = match self.kind.allowed().iter().find(|p| p.name() == name) {
                Some(p) => values.named.get(p),
                None => values.data_points.get(name),
            };
            let Some(value) = value else {
                return Err(TemplateError::Missing {
                    file: self.file.clone(),
                    name: name.to_owned(),
                    hint: if self.kind == Kind::Timeseries
                        && !self.kind.allowed().iter().any(|p| p.name() == name)
                    {
                        format!(" (a data point: the value source has no `{name}`)")
                    } else {
                        String::new()
                    },
                });
            };
            out.push_str(&self.text[last..offset]);
            out.push_str(&json_escape(value));
            last = offset + name.len() + 2;
        }
        out.push_str(&self.text[last..]);
        serde_json::from_str(&out).map_err(|e| TemplateError::Json {
            file: self.file.clone(),
            reason: e.to_string(),
        })
    }

    /// Fills and decodes as the payload type `T` (named `what` in errors).
    pub fn fill_as<T: serde::de::DeserializeOwned>(
        &self,
        values: &Values,
        what: &'static str,
    ) -> Result<(Value, T), TemplateError> {
        let v = self.fill(values)?;
        let t = serde_json::from_value(v.clone()).map_err(|e| TemplateError::Shape {
            file: self.file.clone(),
            what,
            reason: e.to_string(),
        })?;
        Ok((v, t))
    }
}

/// `s` escaped for the inside of a JSON string.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The templates shipped in `configs/mindconnect/example_json/` (the seed's shapes).
pub fn builtin(kind: Kind) -> &'static str {
    match kind {
        Kind::Model => {
            include_str!("../../../../configs/mindconnect/example_json/asset_model.json")
        }
        Kind::Instance => {
            include_str!("../../../../configs/mindconnect/example_json/instance.json")
        }
        Kind::Timeseries => {
            include_str!("../../../../configs/mindconnect/example_json/timeseries.json")
        }
        Kind::Event => include_str!("../../../../configs/mindconnect/example_json/event.json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builtin_templates_fill_into_their_payloads() {
        let id = uuid::Uuid::nil();
        let v = Values::new()
            .with_uuid(id)
            .with(Placeholder::TenantId, "tenantid")
            .with(Placeholder::ModelName, "JetPumpModel")
            .with(Placeholder::CurrDateTime, "2023-07-05T10:11:12.123Z")
            .with(Placeholder::Severity, "20")
            .with_point("temperature", "31")
            .with_point("humidity", "52");
        for k in Kind::ALL {
            let t = Template::parse(k, k.file_name(), builtin(k)).unwrap();
            let json = t.fill(&v).unwrap();
            assert!(!json.to_string().contains("<uuid"), "{k:?}");
        }
        let t = Template::parse(
            Kind::Timeseries,
            "timeseries.json",
            builtin(Kind::Timeseries),
        )
        .unwrap();
        assert_eq!(
            t.data_points().iter().collect::<Vec<_>>(),
            ["humidity", "temperature"]
        );
        let (_, ts) = t
            .fill_as::<crate::protocol::timeseries::TimeseriesMessage>(&v, "timeseries")
            .unwrap();
        assert_eq!(ts.timeseries[1].values[0].value.as_text(), "52");
        let m = Template::parse(Kind::Model, "m", builtin(Kind::Model))
            .unwrap()
            .fill(&v)
            .unwrap();
        assert_eq!(
            m["data"]["typeModel"]["aspectTypes"][0]["id"],
            "tenantid.dht11Aspect"
        );
        assert_eq!(
            m["data"]["instanceModel"]["assets"][0]["name"],
            "${assetName}"
        );
    }

    #[test]
    fn unknown_placeholders_are_named_with_their_line() {
        let e = Template::parse(
            Kind::Instance,
            "instance.json",
            "{\n \"id\": \"<uuid>\",\n \"x\": \"<tenant_id>\"}",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "instance.json:3: unknown placeholder `<tenant_id>` in a Instance template; allowed: <uuid>, <model_name>, <tenantId>"
        );
    }

    #[test]
    fn missing_values_and_bad_json_are_reported() {
        let t = Template::parse(Kind::Timeseries, "ts.json", r#"{"v":"<pressure>"}"#).unwrap();
        let e = t.fill(&Values::new()).unwrap_err().to_string();
        assert!(e.contains("`<pressure>` (a data point"), "{e}");
        let t = Template::parse(Kind::Event, "e.json", r#"{"s": <severity>"#).unwrap();
        assert!(matches!(
            t.fill(&Values::new().with(Placeholder::Severity, "20")),
            Err(TemplateError::Json { .. })
        ));
    }

    #[test]
    fn values_are_json_escaped() {
        let t = Template::parse(Kind::Model, "m", r#"{"x":"<tenantId>"}"#).unwrap();
        let v = t
            .fill(&Values::new().with(Placeholder::TenantId, "a\"b\\c"))
            .unwrap();
        assert_eq!(v["x"], "a\"b\\c");
    }

    #[test]
    fn asset_modeler_parameters_and_comparisons_are_not_placeholders() {
        assert!(scan("${assetName} a < b > c <1x> <>").is_empty());
    }

    proptest! {
        #[test]
        fn parse_and_fill_never_panic(text in "\\PC{0,120}", kind in 0usize..4) {
            let k = Kind::ALL[kind];
            if let Ok(t) = Template::parse(k, "f", &text) {
                let _ = t.fill(&Values::new().with_uuid(uuid::Uuid::nil()));
            }
        }
    }
}
