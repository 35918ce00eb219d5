//! Where a wave's manifests come from, and the only file reading of `k8s.apply`: every
//! `.yaml`/`.yml`/`.j2` file under each of the wave's paths, found in the first of the
//! step's sources that has the path, in name order. Rendering them is pure
//! ([`manifests`](super::manifests)).

use std::path::{Path, PathBuf};

use crate::steps::StepError;

/// A manifest template: its name in messages (the file) and its text.
pub(super) struct Template {
    pub(super) name: String,
    pub(super) text: String,
}

/// Files a wave applies: every `.yaml`/`.yml`/`.j2` file under each path, sorted by name.
pub(super) fn wave_files(roots: &[PathBuf], paths: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for relative in paths {
        let found = roots
            .iter()
            .map(|root| root.join(relative))
            .find(|path| path.exists());
        let Some(path) = found else {
            let looked: Vec<String> = roots
                .iter()
                .map(|root| root.join(relative).display().to_string())
                .collect();
            return Err(format!(
                "`{relative}` not found (looked in {})",
                looked.join(", ")
            ));
        };
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|error| format!("cannot list `{}`: {error}", path.display()))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| is_manifest(file))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "j2")
        )
}

/// Read one of a wave's files.
pub(super) fn read(file: &Path) -> Result<Template, StepError> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| StepError::Params(format!("cannot read `{}`: {error}", file.display())))?;
    Ok(Template {
        name: file.display().to_string(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_takes_its_manifests_from_the_first_source_that_has_the_path() {
        let config = tempfile::tempdir().unwrap();
        let templates = tempfile::tempdir().unwrap();
        std::fs::create_dir(config.path().join("app")).unwrap();
        for file in ["b.yaml", "a.yml", "c.j2", "notes.md"] {
            std::fs::write(config.path().join("app").join(file), "").unwrap();
        }
        std::fs::write(templates.path().join("extra.yaml"), "kind: x").unwrap();
        let roots = [config.path().to_path_buf(), templates.path().to_path_buf()];
        let paths = ["app".to_string(), "extra.yaml".to_string()];
        let names: Vec<String> = wave_files(&roots, &paths)
            .unwrap()
            .iter()
            .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml", "c.j2", "extra.yaml"]);
        let missing = wave_files(&roots, &["nowhere".to_string()]).unwrap_err();
        assert!(
            missing.starts_with("`nowhere` not found (looked in "),
            "{missing}"
        );
        let template = read(&templates.path().join("extra.yaml")).unwrap();
        assert_eq!(template.text, "kind: x");
        assert!(read(&templates.path().join("absent.yaml")).is_err());
    }
}
