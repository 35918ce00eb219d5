//! The AWS ownership protocol, written once for every resource of every AWS step: find the
//! resource (by this run's tags, or by its deterministic name and then its tags); adopt it
//! if it is ours (journaled `adopted`); refuse a stranger that holds the name (a conflict:
//! nothing is touched); otherwise create it tagged as ours (journaled `created`). The
//! caller then finishes what a create does (an attribute, an attachment) whichever way it
//! went, since an earlier attempt may have died between the create and those calls.
//! kube-rs's `Api<K>` in spirit: one protocol, many resource types, each giving only its
//! own lookup and create calls to [`ensure`].

use std::future::Future;

use crate::journal::ResourceAction;
use crate::steps::{StepContext, StepError};

use super::tags::Existing;

/// What a lookup found.
#[derive(Debug)]
pub(super) enum Ownership<T> {
    /// A resource this run and step made: adopt it.
    Ours(T),
    /// A resource holding the name (given here) that this run did not make: never touched.
    Stranger(String),
    /// Nothing: create it.
    Absent,
}

impl<T> Ownership<T> {
    /// A lookup by this run's tags: whatever it found is ours.
    pub(super) fn tagged(found: Option<T>) -> Self {
        found.map_or(Self::Absent, Self::Ours)
    }
}

impl<T> Ownership<Existing<T>> {
    /// A lookup by name: ours only when the resource's `rebuild:run-id` tag names `run_id`
    /// (with no run yet, as when planning a new run, anything found is a stranger).
    pub(super) fn named(found: Option<Existing<T>>, run_id: Option<&str>) -> Self {
        match found {
            None => Self::Absent,
            Some(existing) if run_id.is_some() && existing.run_id.as_deref() == run_id => {
                Self::Ours(existing)
            }
            Some(existing) => Self::Stranger(existing.id),
        }
    }
}

/// A resource type: its name in the journal, and what to do when a stranger holds a name.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    /// The journal's name for the type (`vpc`, `db-instance`).
    pub journal: &'static str,
    /// The hint of the conflict a stranger causes.
    pub conflict_hint: &'static str,
}

impl Kind {
    /// A type found by this run's tags (EC2's): a stranger never matches them.
    pub(super) const fn tagged(journal: &'static str) -> Self {
        Self {
            journal,
            conflict_hint: "",
        }
    }
}

/// What a lookup knows of a resource of ours: at least its id.
pub(super) trait Found {
    /// The id the journal records.
    fn id(&self) -> &str;
}

impl Found for String {
    fn id(&self) -> &str {
        self
    }
}

impl<T> Found for Existing<T> {
    fn id(&self) -> &str {
        &self.id
    }
}

/// What [`ensure`] did: the resource's id, and what `find` found if it adopted.
#[derive(Debug)]
pub(super) struct Ensured<T> {
    /// The resource's id.
    pub id: String,
    /// What the lookup found, when the resource was adopted; `None` when it was created.
    pub adopted: Option<T>,
}

/// Adopt what `find` finds of ours, refuse a stranger, or `create` (each called only when
/// its turn comes); journal the resource as adopted or created.
pub(super) async fn ensure<T, Find, Create>(
    context: &StepContext,
    kind: Kind,
    find: impl FnOnce() -> Find,
    create: impl FnOnce() -> Create,
) -> Result<Ensured<T>, StepError>
where
    T: Found,
    Find: Future<Output = Result<Ownership<T>, StepError>>,
    Create: Future<Output = Result<String, StepError>>,
{
    // On the heap: SDK calls make large futures, and the steps nest these a few levels
    // deep; inline, they would pile up on the worker thread's stack.
    match Box::pin(find()).await? {
        Ownership::Ours(found) => {
            let id = found.id().to_string();
            context.resource(kind.journal, &id, ResourceAction::Adopted)?;
            Ok(Ensured {
                id,
                adopted: Some(found),
            })
        }
        Ownership::Stranger(resource) => Err(StepError::Conflict {
            resource,
            hint: kind.conflict_hint.to_string(),
        }),
        Ownership::Absent => {
            let id = Box::pin(create()).await?;
            context.resource(kind.journal, &id, ResourceAction::Created)?;
            Ok(Ensured { id, adopted: None })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(run_id: Option<&str>) -> Option<Existing<()>> {
        Some(Existing {
            id: "db".into(),
            status: "available".into(),
            run_id: run_id.map(str::to_string),
            resource: (),
        })
    }

    #[test]
    fn a_named_resource_is_ours_only_with_our_run_id() {
        let run = Some("r1");
        assert!(matches!(
            Ownership::named(existing(Some("r1")), run),
            Ownership::Ours(_)
        ));
        assert!(matches!(
            Ownership::named(existing(Some("r2")), run),
            Ownership::Stranger(name) if name == "db"
        ));
        assert!(matches!(
            Ownership::named(existing(None), run),
            Ownership::Stranger(_)
        ));
        assert!(matches!(
            Ownership::named(existing(None), None),
            Ownership::Stranger(_)
        ));
        assert!(matches!(
            Ownership::<Existing<()>>::named(None, run),
            Ownership::Absent
        ));
        assert!(matches!(Ownership::tagged(Some(1)), Ownership::Ours(1)));
        assert!(matches!(Ownership::<u8>::tagged(None), Ownership::Absent));
    }
}
