//! git step kinds: [`fetch`] (`git.fetch`) checks out a tagged commit of a GitHub
//! repository, pinned by SHA.

mod fetch;

pub(super) use fetch::GitFetch;
