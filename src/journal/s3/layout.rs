//! Where each piece of state lives in the bucket, under the URL's prefix (pure; the only
//! code that knows the layout):
//!
//! - `PREFIX/runs/RUN_ID/journal/000000000042.json`: record 42 of a run's journal, one
//!   object per record, holding the same line (with its checksum) as a local journal;
//! - `PREFIX/locks/TARGET.lock`: the run lock of a target region, holding its holder.

use crate::state_url::StateUrl;

/// Digits of a record number in its key: sorts as text, room for 10¹² records.
const RECORD_DIGITS: usize = 12;

/// The keys of one state location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    url: StateUrl,
}

impl Layout {
    /// The layout under `url`.
    pub(crate) fn new(url: StateUrl) -> Self {
        Self { url }
    }

    /// The location, as the user names it.
    pub(crate) fn url(&self) -> &StateUrl {
        &self.url
    }

    /// The prefix every run is under (`…/runs/`).
    pub(crate) fn runs(&self) -> String {
        self.url.key("runs/")
    }

    /// The run id in a common prefix of a listing of [`Layout::runs`] (`…/runs/ID/`).
    pub(crate) fn run_id_of(&self, common_prefix: &str) -> Option<String> {
        let id = common_prefix
            .strip_prefix(&self.runs())?
            .strip_suffix('/')?;
        (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
    }

    /// The prefix of a run's journal records (`…/runs/ID/journal/`).
    pub(crate) fn journal(&self, run_id: &str) -> String {
        self.url.key(&format!("runs/{run_id}/journal/"))
    }

    /// The key of record `number` of a run's journal.
    pub(crate) fn record(&self, run_id: &str, number: u64) -> String {
        format!(
            "{}{number:0width$}.json",
            self.journal(run_id),
            width = RECORD_DIGITS
        )
    }

    /// The record number a key of [`Layout::journal`] names; `None` for any other key.
    pub(crate) fn record_number(&self, run_id: &str, key: &str) -> Option<u64> {
        let name = key.strip_prefix(&self.journal(run_id))?;
        let digits = name.strip_suffix(".json")?;
        let well_formed =
            digits.len() == RECORD_DIGITS && digits.bytes().all(|byte| byte.is_ascii_digit());
        well_formed.then(|| digits.parse().ok()).flatten()
    }

    /// The prefix of the answers to a run's gates (`…/runs/ID/requests/`).
    pub(crate) fn requests(&self, run_id: &str) -> String {
        self.url.key(&format!("runs/{run_id}/requests/"))
    }

    /// The key of answer `number` to a run's gates.
    pub(crate) fn request(&self, run_id: &str, number: u64) -> String {
        format!(
            "{}{number:0width$}.json",
            self.requests(run_id),
            width = RECORD_DIGITS
        )
    }

    /// The prefix of every lock (`…/locks/`).
    pub(crate) fn locks(&self) -> String {
        self.url.key("locks/")
    }

    /// The lock of `target`.
    pub(crate) fn lock(&self, target: &str) -> String {
        format!("{}{target}.lock", self.locks())
    }

    /// The target a key of [`Layout::locks`] is the lock of.
    pub(crate) fn lock_target(&self, key: &str) -> Option<String> {
        let target = key.strip_prefix(&self.locks())?.strip_suffix(".lock")?;
        (!target.is_empty() && !target.contains('/')).then(|| target.to_string())
    }
}

/// The numbers of a journal's records, sorted, and which of them follow the intact
/// records (`intact`, as many as were read whole): those a resume deletes, as a local
/// resume cuts a torn tail off its file.
pub(crate) fn beyond(numbers: &[u64], intact: usize) -> Vec<u64> {
    numbers
        .iter()
        .copied()
        .filter(|number| *number > intact as u64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(url: &str) -> Layout {
        Layout::new(StateUrl::parse(url).unwrap())
    }

    #[test]
    fn keys_sit_under_the_prefix() {
        let layout = layout("s3://team-state/dr/shop");
        assert_eq!(
            layout.record("20260101-000000-aaaa", 42),
            "dr/shop/runs/20260101-000000-aaaa/journal/000000000042.json"
        );
        assert_eq!(
            layout.lock("ap-southeast-1"),
            "dr/shop/locks/ap-southeast-1.lock"
        );
        assert_eq!(layout.runs(), "dr/shop/runs/");
        let root = self::layout("s3://team-state");
        assert_eq!(root.record("r", 1), "runs/r/journal/000000000001.json");
        assert_eq!(root.lock("us-west-2"), "locks/us-west-2.lock");
    }

    #[test]
    fn record_numbers_sort_as_text_and_read_back() {
        let layout = layout("s3://team-state/p");
        let mut keys: Vec<String> = [10, 9, 100, 1]
            .iter()
            .map(|number| layout.record("r", *number))
            .collect();
        keys.sort();
        let numbers: Vec<u64> = keys
            .iter()
            .filter_map(|key| layout.record_number("r", key))
            .collect();
        assert_eq!(numbers, vec![1, 9, 10, 100]);
        for stranger in [
            "p/runs/r/journal/42.json",
            "p/runs/r/journal/00000000004x.json",
            "p/runs/r/journal/000000000042.txt",
            "p/runs/other/journal/000000000042.json",
        ] {
            assert_eq!(layout.record_number("r", stranger), None, "{stranger}");
        }
    }

    #[test]
    fn run_ids_and_targets_come_back_from_listings() {
        let layout = layout("s3://team-state/p");
        assert_eq!(
            layout.run_id_of("p/runs/20260101-000000-aaaa/").as_deref(),
            Some("20260101-000000-aaaa")
        );
        assert_eq!(layout.run_id_of("p/runs//"), None);
        assert_eq!(layout.run_id_of("q/runs/x/"), None);
        assert_eq!(
            layout.lock_target("p/locks/ap-southeast-1.lock").as_deref(),
            Some("ap-southeast-1")
        );
        assert_eq!(layout.lock_target("p/locks/x.txt"), None);
    }

    #[test]
    fn the_records_after_the_intact_ones_are_the_tail() {
        assert_eq!(beyond(&[1, 2, 3, 4], 3), vec![4]);
        assert_eq!(beyond(&[1, 2, 4], 2), vec![4]);
        assert!(beyond(&[1, 2], 2).is_empty());
    }
}
