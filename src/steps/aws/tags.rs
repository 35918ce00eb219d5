//! The tags that make a resource one run's and one step's, written once for each shape the
//! AWS APIs give them: EC2 filters, tag specifications and the check on an answer; RDS tag
//! lists; EKS tag maps. And [`Existing`]: what a lookup by name found (its status and the
//! run its `rebuild:run-id` tag names), for the ownership protocol to judge.

use std::collections::HashMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::steps::StepContext;
use crate::steps::context::{TAG_NAME, TAG_RUN_ID, TAG_STEP};

/// A resource found by its deterministic name: its status, the run its tags name, and the
/// service's own description of it (an endpoint, an EKS cluster).
#[derive(Debug)]
pub(super) struct Existing<T> {
    /// The name it was looked up by (the id the journal records).
    pub id: String,
    /// The status the service reports (`available`, `ACTIVE`).
    pub status: String,
    /// The value of its `rebuild:run-id` tag.
    pub run_id: Option<String>,
    /// What else the lookup returned.
    pub resource: T,
}

/// The run and step whose resources carry their tags.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner<'a> {
    pub run_id: &'a str,
    pub step: &'a str,
}

impl<'a> Owner<'a> {
    /// The owner of what `context`'s step creates.
    pub(super) fn of(context: &'a StepContext) -> Self {
        Self {
            run_id: &context.run_id,
            step: &context.step_id,
        }
    }

    /// EC2 filters for this owner's resource `name` (the three tags).
    pub(super) fn filters(self, name: &str) -> Vec<Filter> {
        vec![
            filter(&format!("tag:{TAG_RUN_ID}"), self.run_id),
            filter(&format!("tag:{TAG_STEP}"), self.step),
            filter(&format!("tag:{TAG_NAME}"), name),
        ]
    }

    /// Whether EC2 `tags` mark a resource as this owner's `name` (checked on the answer
    /// too: some endpoints ignore tag filters on some resource types).
    pub(super) fn owns(self, tags: &[Tag], name: &str) -> bool {
        let value = |key: &str| {
            tags.iter()
                .find(|tag| tag.key() == Some(key))
                .and_then(Tag::value)
        };
        value(TAG_RUN_ID) == Some(self.run_id)
            && value(TAG_STEP) == Some(self.step)
            && value(TAG_NAME) == Some(name)
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

/// The run an RDS resource's tags name.
pub(super) fn rds_run_id(tags: &[aws_sdk_rds::types::Tag]) -> Option<String> {
    tags.iter()
        .find(|tag| tag.key() == Some(TAG_RUN_ID))
        .and_then(|tag| tag.value().map(str::to_string))
}

/// The EKS tags of the step's resource `name`.
pub(super) fn eks_tags(context: &StepContext, name: &str) -> HashMap<String, String> {
    context.tags_for(name).into_iter().collect()
}

/// The run an EKS resource's tags name.
pub(super) fn eks_run_id(tags: Option<&HashMap<String, String>>) -> Option<String> {
    tags.and_then(|tags| tags.get(TAG_RUN_ID).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag::builder().key(key).value(value).build()
    }

    #[test]
    fn ours_only_with_all_three_tags() {
        let owner = Owner {
            run_id: "r1",
            step: "network",
        };
        let tags = [
            tag(TAG_RUN_ID, "r1"),
            tag(TAG_STEP, "network"),
            tag(TAG_NAME, "vpc"),
        ];
        assert!(owner.owns(&tags, "vpc"));
        assert!(!owner.owns(&tags, "igw"));
        assert!(!owner.owns(&tags[..2], "vpc"));
        let other = Owner {
            run_id: "r2",
            ..owner
        };
        assert!(!other.owns(&tags, "vpc"));
        let filters = owner.filters("vpc");
        let names: Vec<&str> = filters.iter().filter_map(Filter::name).collect();
        assert_eq!(
            names,
            ["tag:rebuild:run-id", "tag:rebuild:step", "tag:rebuild:name"]
        );
    }
}
