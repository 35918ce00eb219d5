//! The stack: what a playbook builds in one target region, named so that every run that
//! works on it (a first run, a resume, a deliberate new run) can be recognised as working on
//! the same thing. Its name is journaled in the run's start record and tagged on every
//! resource (`rebuild:stack`). By default it is the playbook's name and the target region
//! (`region-rebuild@ap-southeast-1`); `--stack NAME` names another one (a second copy, a
//! drill). Pure: names are checked here, runs are judged by the journal.

use std::fmt;

use sha2::{Digest, Sha256};

/// Most characters in a stack name given with `--stack` (well under the 256 that AWS
/// allows in a tag value, so the name fits every service's tags).
pub const MAX_LENGTH: usize = 128;

/// A stack's name: lowercase letters, digits and `-`, `_`, `.`, `@`, starting with a letter
/// or a digit. Every character is allowed in EC2, RDS and EKS tag values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Stack(String);

/// Why a name given with `--stack` is not a stack name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackNameError {
    /// Nothing given.
    #[error("the stack name is empty")]
    Empty,
    /// Too long for a tag.
    #[error("the stack name is {length} characters long, more than {MAX_LENGTH}")]
    TooLong {
        /// How long it is.
        length: usize,
    },
    /// A character tags or later names cannot carry.
    #[error("the stack name may not contain `{character}`")]
    Character {
        /// The first such character.
        character: char,
    },
    /// Starts with punctuation.
    #[error("the stack name must start with a lowercase letter or a digit")]
    Start,
}

impl Stack {
    /// A name given with `--stack`, checked.
    pub fn parse(name: &str) -> Result<Self, StackNameError> {
        let first = name.chars().next().ok_or(StackNameError::Empty)?;
        let length = name.chars().count();
        if length > MAX_LENGTH {
            return Err(StackNameError::TooLong { length });
        }
        if let Some(character) = name.chars().find(|c| !is_allowed(*c)) {
            return Err(StackNameError::Character { character });
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(StackNameError::Start);
        }
        Ok(Self(name.to_string()))
    }

    /// The default stack of playbook `playbook` in region `target`: `PLAYBOOK@TARGET`.
    /// Playbook names and regions are lowercase DNS-style labels already; anything else
    /// (a journal written by hand) is mapped to `-` rather than refused, so an old run
    /// always has a stack.
    pub fn default_for(playbook: &str, target: &str) -> Self {
        let clean = |text: &str| -> String {
            text.chars()
                .map(|c| {
                    let c = c.to_ascii_lowercase();
                    if is_allowed(c) && c != '@' { c } else { '-' }
                })
                .collect()
        };
        Self(format!("{}@{}", clean(playbook), clean(target)))
    }

    /// The name a run's journal recorded, taken as written: it was checked when the run
    /// began, and the journal's checksums guard it since.
    pub fn journaled(name: &str) -> Self {
        Self(name.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stack's name as part of an AWS resource name (`db-<part>`, `cluster-<part>`):
    /// lowercase letters, digits and single hyphens, at most [`NAME_PART_LENGTH`]
    /// characters, which every name rule fits (RDS identifiers: 63 characters, no `--`;
    /// EKS names: 100). When the name had to change to fit (`@`, `.`, `_`, a long name),
    /// a digest of the whole name follows, so two stacks never share a name part.
    pub fn name_part(&self) -> String {
        let mut part = String::new();
        for c in self.0.chars() {
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if !(c == '-' && (part.is_empty() || part.ends_with('-'))) {
                part.push(c);
            }
        }
        let part = part.trim_end_matches('-');
        if part == self.0 && part.len() <= NAME_PART_LENGTH {
            return part.to_string();
        }
        let digest = Sha256::digest(self.0.as_bytes());
        let digest: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let keep = NAME_PART_LENGTH - digest.len() - 1;
        let head = part[..part.len().min(keep)].trim_end_matches('-');
        if head.is_empty() {
            digest
        } else {
            format!("{head}-{digest}")
        }
    }
}

/// Which resources a run's steps find, adopt and name as their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnedBy {
    /// Its stack's, whichever run made them (every run since stacks own resources).
    #[default]
    Stack,
    /// Its own run's only: a run journaled before stacks owned resources, whose resources
    /// are named after its run id and may lack the stack's tag.
    Run,
}

impl OwnedBy {
    /// What a journal that does not say means: a run from before stacks owned resources.
    pub fn journaled_before_stacks() -> Self {
        Self::Run
    }
}

/// Most characters of [`Stack::name_part`].
pub const NAME_PART_LENGTH: usize = 40;

impl fmt::Display for Stack {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | '@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_playbook_at_the_target() {
        let stack = Stack::default_for("region-rebuild", "ap-southeast-1");
        assert_eq!(stack.as_str(), "region-rebuild@ap-southeast-1");
        assert_eq!(Stack::parse(stack.as_str()), Ok(stack));
    }

    #[test]
    fn name_parts_fit_aws_names_and_never_collide() {
        let part = |name: &str| Stack::parse(name).unwrap().name_part();
        assert_eq!(part("shop-drill"), "shop-drill");
        let default = part("region-rebuild@ap-southeast-1");
        assert!(
            default.starts_with("region-rebuild-ap-southeast-1-"),
            "{default}"
        );
        assert_eq!(default.len(), "region-rebuild-ap-southeast-1-".len() + 8);
        // Names that map to the same characters still differ.
        assert_ne!(part("a.b"), part("a_b"));
        assert_ne!(part("a.b"), part("a-b"));
        assert_ne!(part("a--b"), part("a-b"));
        let long = "x".repeat(MAX_LENGTH);
        for name in [long.as_str(), "a-", "1@2", "9.a"] {
            let Ok(stack) = Stack::parse(name) else {
                continue;
            };
            let part = stack.name_part();
            assert!(part.len() <= NAME_PART_LENGTH, "{part}");
            assert!(!part.contains("--") && !part.ends_with('-'), "{part}");
            assert!(
                part.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{part}"
            );
        }
    }

    #[test]
    fn a_default_from_a_strange_journal_is_still_a_valid_name() {
        let stack = Stack::default_for("Region Rebuild@x", "ap-southeast-1");
        assert_eq!(stack.as_str(), "region-rebuild-x@ap-southeast-1");
    }

    #[test]
    fn names_are_checked_for_tags() {
        assert_eq!(Stack::parse("drill-2").unwrap().to_string(), "drill-2");
        assert!(Stack::parse("shop.v2_blue@ap-southeast-1").is_ok());
        assert_eq!(Stack::parse(""), Err(StackNameError::Empty));
        assert_eq!(
            Stack::parse("Prod"),
            Err(StackNameError::Character { character: 'P' })
        );
        assert_eq!(
            Stack::parse("prod stack"),
            Err(StackNameError::Character { character: ' ' })
        );
        assert_eq!(
            Stack::parse("prod/a"),
            Err(StackNameError::Character { character: '/' })
        );
        assert_eq!(Stack::parse("-prod"), Err(StackNameError::Start));
        assert_eq!(Stack::parse(&"a".repeat(MAX_LENGTH)).map(|_| ()), Ok(()));
        assert_eq!(
            Stack::parse(&"a".repeat(MAX_LENGTH + 1)),
            Err(StackNameError::TooLong {
                length: MAX_LENGTH + 1
            })
        );
    }
}
