//! The playbooks the tests run: the shipped default playbook, its infrastructure half (what
//! needs only moto), and copies of that half with a few lines rewritten.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The line where the default playbook's deploy half starts.
pub const DEPLOY_MARKER: &str = "  # ---- deploy:";

/// The shipped default playbook, whole: its deploy half needs GitHub, git and a cluster's
/// API as well as AWS (see [`super::stack::Stack`]).
pub fn default_playbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/region-rebuild.yaml")
}

/// The default playbook's infrastructure half (network, database, cluster, nodes), cut
/// from the shipped file at [`DEPLOY_MARKER`]: what the tests that need only moto run.
pub fn infrastructure_playbook() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let full =
            std::fs::read_to_string(default_playbook()).expect("the default playbook is readable");
        let (infrastructure, _) = full
            .split_once(DEPLOY_MARKER)
            .expect("the default playbook marks where its deploy half starts");
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "region-rebuild-infrastructure-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, infrastructure).expect("write the infrastructure playbook");
        path
    })
    .clone()
}

/// The infrastructure half with a secret input `db_master_password`
/// (`REBUILD_DB_MASTER_PASSWORD`) that the database step sets as its new master password,
/// instead of letting RDS manage it: what the tests of secret inputs run.
pub fn password_playbook() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let text = std::fs::read_to_string(infrastructure_playbook())
            .expect("the infrastructure playbook is readable");
        let managed = "      manage_master_password: true\n";
        let inputs = "inputs:\n";
        assert!(text.contains(managed) && text.contains(inputs));
        let text = text
            .replace(managed, "      master_password: ${inputs.db_master_password}\n")
            .replacen(
                inputs,
                "inputs:\n  db_master_password:\n    secret: true\n    env: REBUILD_DB_MASTER_PASSWORD\n    description: a new master password for the restored database\n",
                1,
            );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "region-rebuild-password-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write the password playbook");
        path
    })
    .clone()
}

/// The infrastructure half with each `(from, to)` replaced (every `from` must be there),
/// written to `dir/playbook.yaml`.
#[track_caller]
pub fn infrastructure_playbook_with(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(infrastructure_playbook())
        .expect("the infrastructure playbook is readable");
    for (from, to) in replace {
        assert!(text.contains(from), "playbook lacks `{from}`");
        text = text.replace(from, to);
    }
    let path = dir.join("playbook.yaml");
    std::fs::write(&path, text).expect("write the rewritten playbook");
    path
}
