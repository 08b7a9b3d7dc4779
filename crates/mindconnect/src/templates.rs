//! Finding and reading the `example_json/` templates: `--templates DIR`, or `example_json/` next
//! to the config file, next to its folder (the seed's layout: `configs/` and `example_json/`
//! side by side), or in the current folder. Parsing and filling are `protocol::template`'s.

use std::path::{Path, PathBuf};

use crate::protocol::template::{Kind, Template, TemplateError};

/// Why a template could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateLoadError {
    /// No templates folder.
    #[error("no example_json folder found (looked at {}); pass --templates DIR (the shipped ones are in configs/mindconnect/example_json)", tried.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// Folders looked at.
        tried: Vec<PathBuf>,
    },
    /// A file could not be read.
    #[error("cannot read the {kind:?} template `{path}`: {source}")]
    Read {
        /// Kind.
        kind: Kind,
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Unusable content.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The templates folder in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDir {
    dir: PathBuf,
}

impl TemplateDir {
    /// Finds the folder: `flag` if given, else next to `config_path` as described above.
    pub fn find(flag: Option<&Path>, config_path: &Path) -> Result<Self, TemplateLoadError> {
        if let Some(f) = flag {
            return if f.is_dir() {
                Ok(TemplateDir { dir: f.to_owned() })
            } else {
                Err(TemplateLoadError::NotFound {
                    tried: vec![f.to_owned()],
                })
            };
        }
        let cfg_dir = config_path.parent().unwrap_or(Path::new(""));
        let mut tried = vec![cfg_dir.join("example_json")];
        if let Some(parent) = cfg_dir.parent() {
            tried.push(parent.join("example_json"));
        }
        tried.push(PathBuf::from("example_json"));
        match tried.iter().find(|p| p.is_dir()) {
            Some(d) => Ok(TemplateDir { dir: d.clone() }),
            None => Err(TemplateLoadError::NotFound { tried }),
        }
    }

    /// A folder as is.
    pub fn at(dir: PathBuf) -> Self {
        TemplateDir { dir }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `kind`'s file.
    pub fn path(&self, kind: Kind) -> PathBuf {
        self.dir.join(kind.file_name())
    }

    /// The `.json` files of the folder (event type definitions left out), `first` first.
    pub fn json_files(&self, first: &Path) -> Result<Vec<PathBuf>, TemplateLoadError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| TemplateLoadError::Read {
            kind: Kind::Model,
            path: self.dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p.to_string_lossy().ends_with(".eventtype.json")
            })
            .collect();
        files.sort_by_key(|p| (p.as_path() != first, p.clone()));
        Ok(files)
    }

    /// Reads and checks `kind`'s template.
    pub fn load(&self, kind: Kind) -> Result<Template, TemplateLoadError> {
        load_file(&self.path(kind), kind)
    }
}

/// Reads and checks the template at `path` as `kind`.
pub fn load_file(path: &Path, kind: Kind) -> Result<Template, TemplateLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateLoadError::Read {
        kind,
        path: path.to_owned(),
        source,
    })?;
    Ok(Template::parse(kind, &path.display().to_string(), &text)?)
}

/// Writes the shipped templates (and the event type definition) into `dir`.
pub fn write_builtin(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for k in Kind::ALL {
        std::fs::write(
            dir.join(k.file_name()),
            crate::protocol::template::builtin(k),
        )?;
    }
    let et = serde_json::to_string_pretty(&crate::protocol::event::sensor_interrupt_event_type())
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("SensorInterruptEvent.eventtype.json"), et)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_seed_layout_and_names_where_it_looked() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("configs/mqtt-config.json");
        let e = TemplateDir::find(None, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("configs/example_json") && e.contains("--templates"),
            "{e}"
        );
        write_builtin(&d.path().join("example_json")).unwrap();
        let t = TemplateDir::find(None, &cfg).unwrap();
        assert_eq!(t.dir(), d.path().join("example_json"));
        assert!(t.load(Kind::Model).is_ok());
        let files = t.json_files(&t.path(Kind::Model)).unwrap();
        assert_eq!(files.len(), 4);
        assert_eq!(files[0], t.path(Kind::Model));
        std::fs::write(t.path(Kind::Event), "{\"x\": \"<nope>\"}").unwrap();
        let e = t.load(Kind::Event).unwrap_err().to_string();
        assert!(
            e.contains("event.json:1: unknown placeholder `<nope>`"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_event_type_file_is_the_readme_payload() {
        let shipped: serde_json::Value = serde_json::from_str(include_str!(
            "../../../configs/mindconnect/example_json/SensorInterruptEvent.eventtype.json"
        ))
        .unwrap();
        assert_eq!(
            shipped,
            serde_json::to_value(crate::protocol::event::sensor_interrupt_event_type()).unwrap()
        );
    }
}
