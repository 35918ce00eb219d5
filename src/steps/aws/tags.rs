//! The tags that make a resource one stack's and one step's, written once for each shape
//! the AWS APIs give them: EC2 filters, tag specifications and the check on an answer; RDS
//! tag lists; EKS tag maps. And [`Existing`]: what a lookup by name found (its status and
//! its tags), for the ownership protocol to judge by the run's [`Owner`].

use std::collections::HashMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::runtime::Owner;
use crate::steps::StepContext;
use crate::steps::context::{TAG_NAME, TAG_STEP};

/// A resource found by its deterministic name: its status, its tags, and the service's
/// own description of it (an endpoint, an EKS cluster).
#[derive(Debug, Clone)]
pub(super) struct Existing<T> {
    /// The name it was looked up by (the id the journal records).
    pub id: String,
    /// The status the service reports (`available`, `ACTIVE`).
    pub status: String,
    /// Its tags.
    pub tags: Marks,
    /// What else the lookup returned.
    pub resource: T,
}

/// A resource's tags, from whichever shape its service gives them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Marks(HashMap<String, String>);

impl Marks {
    /// EC2's tags.
    pub(super) fn ec2(tags: &[Tag]) -> Self {
        Self(
            tags.iter()
                .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
                .collect(),
        )
    }

    /// RDS's tag list.
    pub(super) fn rds(tags: &[aws_sdk_rds::types::Tag]) -> Self {
        Self(
            tags.iter()
                .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
                .collect(),
        )
    }

    /// EKS's tag map.
    pub(super) fn eks(tags: Option<&HashMap<String, String>>) -> Self {
        Self(tags.cloned().unwrap_or_default())
    }

    /// The value of tag `key`.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether `owner` owns the resource these tags are on.
    pub(super) fn owned_by(&self, owner: &Owner) -> bool {
        owner.owns(self.get(owner.tag()))
    }
}

/// The owner and step whose resources carry their tags.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark<'a> {
    pub owner: &'a Owner,
    pub step: &'a str,
}

impl<'a> Mark<'a> {
    /// The mark of what `context`'s step creates.
    pub(super) fn of(context: &'a StepContext) -> Self {
        Self {
            owner: &context.owner,
            step: &context.step_id,
        }
    }

    /// EC2 filters for this owner's resource `name` (the three tags).
    pub(super) fn filters(self, name: &str) -> Vec<Filter> {
        vec![
            filter(&format!("tag:{}", self.owner.tag()), self.owner.value()),
            filter(&format!("tag:{TAG_STEP}"), self.step),
            filter(&format!("tag:{TAG_NAME}"), name),
        ]
    }

    /// Whether EC2 `tags` mark a resource as this owner's `name` (checked on the answer
    /// too: some endpoints ignore tag filters on some resource types).
    pub(super) fn owns(self, tags: &[Tag], name: &str) -> bool {
        self.marks(&Marks::ec2(tags), name)
    }

    /// Whether `tags` mark a resource as this owner's `name`.
    pub(super) fn marks(self, tags: &Marks, name: &str) -> bool {
        tags.owned_by(self.owner)
            && tags.get(TAG_STEP) == Some(self.step)
            && tags.get(TAG_NAME) == Some(name)
    }
}

/// An EC2 filter on one value.
pub(super) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The EC2 tag specification of the step's resource `name`: the run's tags, then `extra`.
pub(super) fn ec2_tags(
    context: &StepContext,
    resource_type: ResourceType,
    name: &str,
    extra: &[(&str, &str)],
) -> TagSpecification {
    let extra = extra
        .iter()
        .map(|(key, value)| ((*key).to_string(), (*value).to_string()));
    let tags = context
        .tags_for(name)
        .into_iter()
        .chain(extra)
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(tags))
        .build()
}

/// The RDS tags of the step's resource `name`.
pub(super) fn rds_tags(context: &StepContext, name: &str) -> Vec<aws_sdk_rds::types::Tag> {
    context
        .tags_for(name)
        .into_iter()
        .map(|(key, value)| {
            aws_sdk_rds::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
        })
        .collect()
}

/// The EKS tags of the step's resource `name`.
pub(super) fn eks_tags(context: &StepContext, name: &str) -> HashMap<String, String> {
    context.tags_for(name).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Stack;
    use crate::steps::context::{TAG_RUN_ID, TAG_STACK};

    fn tag(key: &str, value: &str) -> Tag {
        Tag::builder().key(key).value(value).build()
    }

    #[test]
    fn ours_only_with_the_owner_the_step_and_the_name() {
        let stack = Owner::stack(&Stack::parse("shop").unwrap());
        let mark = Mark {
            owner: &stack,
            step: "network",
        };
        let tags = [
            tag(TAG_STACK, "shop"),
            tag(TAG_RUN_ID, "r1"),
            tag(TAG_STEP, "network"),
            tag(TAG_NAME, "vpc"),
        ];
        assert!(mark.owns(&tags, "vpc"));
        assert!(!mark.owns(&tags, "igw"));
        assert!(!mark.owns(&tags[1..], "vpc"), "no stack tag");
        let drill = Owner::stack(&Stack::parse("drill").unwrap());
        let other = Mark {
            owner: &drill,
            ..mark
        };
        assert!(!other.owns(&tags, "vpc"));
        let filters = mark.filters("vpc");
        let names: Vec<&str> = filters.iter().filter_map(Filter::name).collect();
        assert_eq!(
            names,
            ["tag:rebuild:stack", "tag:rebuild:step", "tag:rebuild:name"]
        );

        // A run journaled before stacks owned resources finds its own by the run's tag.
        let run = Owner::run("r1");
        let old = Mark {
            owner: &run,
            ..mark
        };
        assert!(old.owns(&tags[1..], "vpc"));
        assert!(
            !Mark {
                owner: &Owner::run("r2"),
                ..mark
            }
            .owns(&tags, "vpc")
        );
        let filters = old.filters("vpc");
        assert_eq!(filters[0].name(), Some("tag:rebuild:run-id"));
        assert_eq!(filters[0].values(), ["r1"]);
    }
}
