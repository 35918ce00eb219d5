//! `git bundle` files as mirrors: reading a bundle's header (v2 or v3, SHA-1), listing its
//! refs, and loading its objects and refs into a repository. Blocking.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use git2::{Oid, Repository};

use super::checkout::{Failure, other};

/// A bundle's header: the commits it needs, and its refs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) prerequisites: Vec<Oid>,
    pub(super) refs: Vec<(String, Oid)>,
}

/// Read a `git bundle` header (v2 or v3, SHA-1), leaving `reader` at the pack.
pub(super) fn read_header(reader: &mut impl BufRead, shown: &str) -> Result<Header, String> {
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| -> Result<String, String> {
        line.clear();
        reader
            .read_until(b'\n', line)
            .map_err(|error| format!("cannot read the bundle `{shown}`: {error}"))?;
        Ok(String::from_utf8_lossy(line)
            .trim_end_matches('\n')
            .to_string())
    };
    let signature = next(&mut line)?;
    if signature != "# v2 git bundle" && signature != "# v3 git bundle" {
        return Err(format!(
            "`{shown}` is not a git bundle (made with `git bundle create`)"
        ));
    }
    let mut header = Header::default();
    loop {
        let text = next(&mut line)?;
        if text.is_empty() {
            return Ok(header);
        }
        if let Some(capability) = text.strip_prefix('@') {
            if capability.starts_with("filter") {
                return Err(format!(
                    "`{shown}` is a partial (filtered) bundle; make a full one"
                ));
            }
            if let Some(format) = capability.strip_prefix("object-format=")
                && format != "sha1"
            {
                return Err(format!(
                    "`{shown}` uses `{format}` object ids; only SHA-1 is supported"
                ));
            }
            continue;
        }
        let (oid, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let prerequisite = oid.strip_prefix('-');
        let oid = Oid::from_str(prerequisite.unwrap_or(oid))
            .map_err(|_| format!("`{shown}` has a malformed header line `{text}`"))?;
        match prerequisite {
            Some(_) => header.prerequisites.push(oid),
            None => header.refs.push((rest.to_string(), oid)),
        }
    }
}

/// Open the bundle at `path`, for reading from its header on.
fn open(path: &Path) -> Result<BufReader<File>, Failure> {
    let file = File::open(path).map_err(|error| {
        Failure::Missing(format!(
            "cannot open the mirror bundle `{}`: {error}",
            path.display()
        ))
    })?;
    Ok(BufReader::new(file))
}

/// The refs a bundle lists (name → object id), read without writing anything.
pub(super) fn list(path: &Path) -> Result<Vec<(String, String)>, Failure> {
    let header =
        read_header(&mut open(path)?, &path.display().to_string()).map_err(Failure::Other)?;
    Ok(header
        .refs
        .into_iter()
        .map(|(name, oid)| (name, oid.to_string()))
        .collect())
}

/// Load a bundle's objects and tags into `repository` (branches go under
/// `refs/remotes/mirror/`).
pub(super) fn import(repository: &Repository, path: &Path) -> Result<(), Failure> {
    let shown = path.display().to_string();
    let mut reader = open(path)?;
    let header = read_header(&mut reader, &shown).map_err(Failure::Other)?;
    let odb = repository
        .odb()
        .map_err(|error| other("cannot open the object database", error.message()))?;
    if let Some(missing) = header.prerequisites.iter().find(|oid| !odb.exists(**oid)) {
        return Err(Failure::Other(format!(
            "the bundle `{shown}` is incremental: it needs commit {missing}, which it does not hold; make the mirror with `git bundle create FILE --all`"
        )));
    }
    let mut writer = odb
        .packwriter()
        .map_err(|error| other("cannot write objects", error.message()))?;
    std::io::copy(&mut reader, &mut writer)
        .map_err(|error| other(&format!("cannot read the pack in `{shown}`"), error))?;
    writer
        .commit()
        .map_err(|error| other(&format!("the pack in `{shown}` is broken"), error.message()))?;
    for (name, oid) in &header.refs {
        let local = if name.starts_with("refs/tags/") {
            name.clone()
        } else if let Some(branch) = name.strip_prefix("refs/heads/") {
            format!("refs/remotes/mirror/{branch}")
        } else {
            continue;
        };
        repository
            .reference(&local, *oid, true, "rebuild: imported from a bundle")
            .map_err(|error| {
                other(
                    &format!("cannot record `{name}` from `{shown}`"),
                    error.message(),
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_headers_are_read_up_to_the_pack() {
        let commit = "50d0f7d8603add94b23e4e7fae6f7727261dc85e";
        let tag = "77989df1de2d773af5b551369717d8e61445de63";
        let text = format!(
            "# v2 git bundle\n-{commit} base\n{commit} refs/heads/main\n{tag} refs/tags/v1.0.0\n\nPACK..."
        );
        let mut reader = std::io::Cursor::new(text.into_bytes());
        let header = read_header(&mut reader, "x.bundle").unwrap();
        assert_eq!(header.prerequisites.len(), 1);
        assert_eq!(
            header
                .refs
                .iter()
                .map(|(name, oid)| format!("{name}={oid}"))
                .collect::<Vec<_>>(),
            [
                format!("refs/heads/main={commit}"),
                format!("refs/tags/v1.0.0={tag}")
            ]
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        assert_eq!(rest, "PACK...");

        let v3 = "# v3 git bundle\n@object-format=sha256\n\n";
        let error = read_header(&mut std::io::Cursor::new(v3), "y.bundle").unwrap_err();
        assert!(error.contains("only SHA-1"), "{error}");
        let error = read_header(&mut std::io::Cursor::new("hello\n"), "z").unwrap_err();
        assert!(error.contains("is not a git bundle"), "{error}");
    }
}
