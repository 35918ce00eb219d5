//! The AWS ownership protocol, written once for every resource of every AWS step: find the
//! resource (by its stack's and step's tags, or by its deterministic name and then its
//! tags); adopt it if it is ours (journaled `adopted`), whichever run of the stack made it;
//! refuse a stranger that holds the name (a conflict: nothing is touched); otherwise
//! create it tagged as ours (journaled `created`). The
//! caller then finishes what a create does (an attribute, an attachment) whichever way it
//! went, since an earlier attempt may have died between the create and those calls.
//! kube-rs's `Api<K>` in spirit: one protocol, many resource types, each giving only its
//! own lookup and create calls to [`ensure`].

use std::future::Future;

use crate::journal::ResourceAction;
use crate::steps::{StepContext, StepError};

use crate::runtime::Owner;

use super::tags::Existing;

/// What a lookup found.
#[derive(Debug)]
pub(super) enum Ownership<T> {
    /// A resource this stack's step made (in this run or an earlier one): adopt it.
    Ours(T),
    /// A resource holding the name (given here) that this stack did not make: never touched.
    Stranger(String),
    /// Nothing: create it.
    Absent,
}

impl<T> Ownership<T> {
    /// A lookup by the owner's tags: whatever it found is ours.
    pub(super) fn tagged(found: Option<T>) -> Self {
        found.map_or(Self::Absent, Self::Ours)
    }
}

impl<T> Ownership<Existing<T>> {
    /// A lookup by name: ours only when the resource's tags say `owner` owns it (its
    /// `rebuild:stack` tag names the run's stack).
    pub(super) fn named(found: Option<Existing<T>>, owner: &Owner) -> Self {
        match found {
            None => Self::Absent,
            Some(existing) if existing.tags.owned_by(owner) => Self::Ours(existing),
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
    /// A type found by its owner's tags (EC2's): a stranger never matches them.
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
    use crate::stack::Stack;
    use crate::steps::context::{TAG_RUN_ID, TAG_STACK};

    use super::super::tags::Marks;

    fn existing(tags: &[(&str, &str)]) -> Option<Existing<()>> {
        let tags = tags
            .iter()
            .map(|(key, value)| (*key, *value))
            .map(|(key, value)| {
                aws_sdk_rds::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
            })
            .collect::<Vec<_>>();
        Some(Existing {
            id: "db".into(),
            status: "available".into(),
            tags: Marks::rds(&tags),
            resource: (),
        })
    }

    #[test]
    fn a_named_resource_is_ours_only_with_our_stack() {
        let stack = Owner::stack(&Stack::parse("shop").unwrap());
        // Any run of the stack made it: ours.
        let ours = [(TAG_STACK, "shop"), (TAG_RUN_ID, "an-earlier-run")];
        assert!(matches!(
            Ownership::named(existing(&ours), &stack),
            Ownership::Ours(_)
        ));
        assert!(matches!(
            Ownership::named(existing(&[(TAG_STACK, "drill")]), &stack),
            Ownership::Stranger(name) if name == "db"
        ));
        assert!(matches!(
            Ownership::named(existing(&[(TAG_RUN_ID, "r1")]), &stack),
            Ownership::Stranger(_)
        ));
        assert!(matches!(
            Ownership::named(existing(&[]), &stack),
            Ownership::Stranger(_)
        ));
        // A run from before stacks owned resources: only what its run id tags.
        let run = Owner::run("r1");
        assert!(matches!(
            Ownership::named(existing(&[(TAG_RUN_ID, "r1")]), &run),
            Ownership::Ours(_)
        ));
        assert!(matches!(
            Ownership::named(existing(&ours), &run),
            Ownership::Stranger(_)
        ));
        assert!(matches!(
            Ownership::<Existing<()>>::named(None, &stack),
            Ownership::Absent
        ));
        assert!(matches!(Ownership::tagged(Some(1)), Ownership::Ours(1)));
        assert!(matches!(Ownership::<u8>::tagged(None), Ownership::Absent));
    }
}
