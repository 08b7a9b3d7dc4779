//! `agent.ini`, the 2024 sample's synchronisation record, in the format Python's
//! `configparser` writes: a `[DEFAULT]` section with `model-synchronization-state`,
//! `model-synchronization-sha` and `model-synchronization-status` (`key = value`). Reading
//! accepts what `configparser` accepts for these keys (`=` or `:`, any case, `#`/`;`
//! comments); writing changes only the lines of the three keys and keeps every other line,
//! key and section as it was. Pure: text in, text out.

/// `[DEFAULT]`.
pub const SECTION: &str = "DEFAULT";
/// Where the state machine is.
pub const KEY_STATE: &str = "model-synchronization-state";
/// sha256 of the local model file at the last successful synchronisation.
pub const KEY_SHA: &str = "model-synchronization-sha";
/// The verdict of the last synchronisation.
pub const KEY_STATUS: &str = "model-synchronization-status";

/// The sample's states (`lib/AssetModelHelper.ModelState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelState {
    /// Start here.
    InitiateModelDownload,
    /// The download request was sent.
    InitiatedModelDownload,
    /// The cloud model was downloaded.
    ModelDownloaded,
    /// `o/amo_v4/mi` was sent.
    UpdateModelTriggered,
    /// Success.
    ModelSynchronizationSuccessful,
    /// Failed.
    ModelSynchronizationFailed,
    /// Done (see the status).
    ModelSynchronizationFinished,
}

impl ModelState {
    /// All, in order.
    pub const ALL: [ModelState; 7] = [
        ModelState::InitiateModelDownload,
        ModelState::InitiatedModelDownload,
        ModelState::ModelDownloaded,
        ModelState::UpdateModelTriggered,
        ModelState::ModelSynchronizationSuccessful,
        ModelState::ModelSynchronizationFailed,
        ModelState::ModelSynchronizationFinished,
    ];

    /// The name the file holds.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::InitiateModelDownload => "INITIATE_MODEL_DOWNLOAD",
            ModelState::InitiatedModelDownload => "INITIATED_MODEL_DOWNLOAD",
            ModelState::ModelDownloaded => "MODEL_DOWNLOADED",
            ModelState::UpdateModelTriggered => "UPDATE_MODEL_TRIGGERED",
            ModelState::ModelSynchronizationSuccessful => "MODEL_SYNCHRONIZATION_SUCCESSFUL",
            ModelState::ModelSynchronizationFailed => "MODEL_SYNCHRONIZATION_FAILED",
            ModelState::ModelSynchronizationFinished => "MODEL_SYNCHRONIZATION_FINISHED",
        }
    }

    /// Parses a name (exact, as the sample writes it).
    pub fn parse(s: &str) -> Option<ModelState> {
        ModelState::ALL.into_iter().find(|m| m.as_str() == s.trim())
    }
}

/// The three keys as read (`None`: absent or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRecord {
    /// `model-synchronization-state` as written (unknown names are kept, not refused).
    pub state: Option<String>,
    /// `model-synchronization-sha`.
    pub sha: Option<String>,
    /// `model-synchronization-status`.
    pub status: Option<String>,
}

impl SyncRecord {
    /// Whether the last synchronisation succeeded for a local model with this sha: then there
    /// is nothing to send (the sample's `FINISHED` state with an unchanged sha).
    pub fn in_sync(&self, sha: &str) -> bool {
        self.sha.as_deref() == Some(sha)
            && self.status.as_deref() == Some(ModelState::ModelSynchronizationSuccessful.as_str())
    }

    /// Whether the last synchronisation succeeded (for any model).
    pub fn succeeded(&self) -> bool {
        self.status.as_deref() == Some(ModelState::ModelSynchronizationSuccessful.as_str())
    }
}

/// A line of `agent.ini` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: `{text}` is neither `[section]`, `key = value`, a comment nor empty")]
pub struct IniError {
    /// 1-based line number.
    pub line: usize,
    /// The line (cut to 60 characters).
    pub text: String,
}

fn split_kv(line: &str) -> Option<(&str, &str)> {
    let i = line.find(['=', ':'])?;
    Some((line[..i].trim(), line[i + 1..].trim()))
}

fn is_comment(t: &str) -> bool {
    t.is_empty() || t.starts_with('#') || t.starts_with(';')
}

fn section_of(t: &str) -> Option<&str> {
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// Reads the three keys from the `[DEFAULT]` section of `text`.
pub fn parse(text: &str) -> Result<SyncRecord, IniError> {
    let mut rec = SyncRecord::default();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if is_comment(t) {
            continue;
        }
        if let Some(s) = section_of(t) {
            section = Some(s.to_owned());
            continue;
        }
        // configparser continuation lines (indented) belong to the previous value; none of
        // ours is multi-line, so they are skipped.
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let Some((k, v)) = split_kv(t) else {
            return Err(IniError {
                line: n + 1,
                text: t.chars().take(60).collect(),
            });
        };
        if section.as_deref() != Some(SECTION) {
            continue;
        }
        let v = (!v.is_empty()).then(|| v.to_owned());
        match k.to_ascii_lowercase().as_str() {
            KEY_STATE => rec.state = v,
            KEY_SHA => rec.sha = v,
            KEY_STATUS => rec.status = v,
            _ => {}
        }
    }
    Ok(rec)
}

/// `text` with the three keys set to `rec` (an absent value is written empty, as
/// `configparser` keeps keys). Other lines stay as they are; missing keys are added at the
/// end of `[DEFAULT]`, which is created at the top when there is none.
pub fn update(text: &str, rec: &SyncRecord) -> String {
    let value = |k: &str| -> &str {
        match k {
            KEY_STATE => rec.state.as_deref(),
            KEY_SHA => rec.sha.as_deref(),
            _ => rec.status.as_deref(),
        }
        .unwrap_or("")
    };
    let ours = [KEY_STATE, KEY_SHA, KEY_STATUS];
    let mut out: Vec<String> = Vec::new();
    let mut written: Vec<&str> = Vec::new();
    let mut section: Option<String> = None;
    let mut default_end: Option<usize> = None;
    for raw in text.lines() {
        let t = raw.trim();
        if let Some(s) = section_of(t) {
            if section.as_deref() == Some(SECTION) {
                default_end = Some(out.len());
            }
            section = Some(s.to_owned());
            out.push(raw.to_owned());
            continue;
        }
        if section.as_deref() == Some(SECTION)
            && !is_comment(t)
            && let Some((k, _)) = split_kv(t)
            && let Some(key) = ours.iter().find(|o| **o == k.to_ascii_lowercase())
        {
            if !written.contains(key) {
                out.push(format!("{key} = {}", value(key)));
                written.push(key);
            }
            continue;
        }
        out.push(raw.to_owned());
    }
    if section.as_deref() == Some(SECTION) {
        default_end = Some(out.len());
    }
    let missing: Vec<String> = ours
        .iter()
        .filter(|k| !written.contains(k))
        .map(|k| format!("{k} = {}", value(k)))
        .collect();
    if let Some(mut at) = default_end {
        {
            // Before the blank lines that separate it from the next section.
            while at > 0 && out[at - 1].trim().is_empty() {
                at -= 1;
            }
            for (i, l) in missing.into_iter().enumerate() {
                out.insert(at + i, l);
            }
        }
    } else {
        let mut head = vec![format!("[{SECTION}]")];
        head.extend(missing);
        if !out.is_empty() {
            head.push(String::new());
        }
        head.extend(out);
        out = head;
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "[DEFAULT]\nmodel-synchronization-state = MODEL_SYNCHRONIZATION_FINISHED\nmodel-synchronization-sha = abc\nmodel-synchronization-status = MODEL_SYNCHRONIZATION_SUCCESSFUL\n\n";

    #[test]
    fn reads_the_samples_format() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.state.as_deref(), Some("MODEL_SYNCHRONIZATION_FINISHED"));
        assert!(r.in_sync("abc"));
        assert!(!r.in_sync("abd"));
        let r = parse("[DEFAULT]\nModel-Synchronization-Sha: x\n# c\n; c\n").unwrap();
        assert_eq!(r.sha.as_deref(), Some("x"));
        assert_eq!(r.status, None);
        assert!(parse("").unwrap() == SyncRecord::default());
    }

    #[test]
    fn keys_outside_default_do_not_count_and_garbage_is_named() {
        let r = parse("[other]\nmodel-synchronization-sha = x\n").unwrap();
        assert_eq!(r.sha, None);
        let e = parse("[DEFAULT]\nthis is not ini\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("`this is not ini`"), "{e}");
    }

    #[test]
    fn update_keeps_what_it_does_not_own() {
        let text = "# mine\n[DEFAULT]\nmodel-synchronization-state = INITIATE_MODEL_DOWNLOAD\nowner = me\n\n[extra]\nk = v\n";
        let rec = SyncRecord {
            state: Some("MODEL_SYNCHRONIZATION_FINISHED".into()),
            sha: Some("s".into()),
            status: Some("MODEL_SYNCHRONIZATION_SUCCESSFUL".into()),
        };
        let out = update(text, &rec);
        assert_eq!(
            out,
            "# mine\n[DEFAULT]\nmodel-synchronization-state = MODEL_SYNCHRONIZATION_FINISHED\nowner = me\nmodel-synchronization-sha = s\nmodel-synchronization-status = MODEL_SYNCHRONIZATION_SUCCESSFUL\n\n[extra]\nk = v\n"
        );
        assert_eq!(parse(&out).unwrap(), rec);
        assert_eq!(update(&out, &rec), out, "stable");
    }

    #[test]
    fn update_creates_the_section() {
        let rec = SyncRecord {
            state: Some("INITIATE_MODEL_DOWNLOAD".into()),
            ..SyncRecord::default()
        };
        let out = update("", &rec);
        assert_eq!(
            out,
            "[DEFAULT]\nmodel-synchronization-state = INITIATE_MODEL_DOWNLOAD\nmodel-synchronization-sha = \nmodel-synchronization-status = \n"
        );
        assert_eq!(parse(&out).unwrap(), rec);
        let out = update("[x]\na = b\n", &rec);
        assert!(out.starts_with("[DEFAULT]\n"), "{out}");
        assert!(out.ends_with("\n[x]\na = b\n"), "{out}");
    }

    #[test]
    fn states_roundtrip() {
        for s in ModelState::ALL {
            assert_eq!(ModelState::parse(s.as_str()), Some(s));
        }
    }
}
