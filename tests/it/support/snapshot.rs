//! Snapshots of the binary's output (insta) are compared after filters replace what changes
//! from run to run or from machine to machine: run ids, times and measured durations, the
//! crate's folder and temporary paths, the user and host, and the ids and addresses moto
//! makes up.

/// Settings with the filters; bind them around `insta::assert_snapshot!`.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&escape(env!("CARGO_MANIFEST_DIR")), "[CRATE]");
    // Temporary folders and files (state directories, rewritten playbooks), wherever the
    // machine keeps them.
    let temporary = std::env::temp_dir();
    settings.add_filter(
        &format!(
            r"{}/[^\s`'\x22,)]+",
            escape(temporary.to_string_lossy().trim_end_matches('/'))
        ),
        "[PATH]",
    );
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings
}

/// `(regex, replacement)`, applied in order.
const FILTERS: &[(&str, &str)] = &[
    // Run ids: `20261201-204715-3f9a`.
    (r"\b\d{8}-\d{6}-[0-9a-f]{4}\b", "[RUN_ID]"),
    // RFC 3339 times.
    (
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
        "[TIME]",
    ),
    // Times of day (`last update 21:05:32 UTC`).
    (r"\b\d{2}:\d{2}:\d{2} UTC", "[CLOCK] UTC"),
    // How long each step took, the last column of `rebuild status`.
    (
        r"(?m)^(  [a-z][a-z0-9-]* +[a-z0-9.]+ +[a-z]+ +\d+ +)\S+$",
        "${1}[DURATION]",
    ),
    // The age of the newest snapshot, measured when planning and when restoring.
    (r"rpo_seconds = \d+", "rpo_seconds = [AGE]"),
    (r"rpo \(snapshot age\): \S+", "rpo (snapshot age): [AGE]"),
    // Temporary folders and files under `/tmp` when `TMPDIR` points elsewhere.
    (r"/tmp/[^\s`'\x22,)]+", "[PATH]"),
    // What moto makes up for a new EKS cluster.
    (
        r"certificate_authority = \S+",
        "certificate_authority = [CERTIFICATE]",
    ),
    (
        r"https://\S+\.eks\.amazonaws\.com/",
        "https://[EKS_ENDPOINT]/",
    ),
    // Who ran it: the machine's user and host (`started by alice@laptop as …`).
    (r" by [^@\s]+@[^\s]+", " by [USER]@[HOST]"),
    // Resource ids moto makes up.
    (
        r"\b(vpc|subnet|igw|nat|eipalloc|eipassoc|rtb|rtbassoc|sg|sgr|eni|i)-[0-9a-f]{8,17}\b",
        "[ID]",
    ),
];

/// `text` as a regex that matches it literally.
fn escape(text: &str) -> String {
    let mut escaped = String::new();
    for character in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}
