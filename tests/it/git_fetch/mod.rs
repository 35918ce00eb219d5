//! End-to-end runs of the `rebuild` binary with a playbook of `git.fetch` steps only (the
//! Kubernetes config repository and the application repository), against real git: bare
//! repositories served by `git daemon` (and by `git http-backend` for git over HTTP), and
//! the GitHub REST stand-in backed by the same repositories. No AWS call is needed: the
//! binary's AWS endpoint is a closed port, so any call would fail the run.

mod bed;

use std::ffi::OsString;
use std::path::Path;

use crate::support::git::checkout_head;
use bed::{Bed, TOKEN};

#[test]
fn explicit_tags_check_out_the_tagged_commits_of_both_repositories() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    let output = bed.rebuild(&playbook);
    output.success();

    let config = bed.assert_fetched(
        "config",
        &bed.config_commits[1],
        &[
            ("ref", "v1.2.0"),
            ("repo", "acme/shop-config"),
            ("source", "github"),
        ],
    );
    assert!(
        config["path"]
            .as_str()
            .unwrap()
            .ends_with("/config/shop-config")
    );
    let deployed =
        std::fs::read_to_string(Path::new(config["path"].as_str().unwrap()).join("deploy.yaml"))
            .unwrap();
    assert!(deployed.contains("image: shop:1.2.0"), "{deployed}");

    let app = bed.assert_fetched(
        "app",
        &bed.app_commits[1],
        &[("ref", "v2.1.0"), ("source", "github")],
    );
    assert!(app["path"].as_str().unwrap().ends_with("/app/shop"));

    // The API was asked with the token; the token is nowhere to be seen.
    assert!(bed.github.requests().iter().any(|seen| {
        seen.path == "/repos/acme/shop-config/git/ref/tags/v1.2.0"
            && seen.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))
    }));
    bed.assert_no_token(&output);
}

#[test]
fn latest_release_checks_out_the_release_tag() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["latest_release: true"], &["latest_release: true"]);
    bed.rebuild(&playbook).success();
    bed.assert_fetched("config", &bed.config_commits[0], &[("ref", "v1.0.0")]);
    bed.assert_fetched("app", &bed.app_commits[1], &[("ref", "v2.1.0")]);
}

#[test]
fn tag_pattern_picks_the_highest_release_version_across_pages() {
    let bed = Bed::new();
    bed.github.set_max_per_page(2);
    let playbook = bed.playbook(&["tag_pattern: \"v1.*\""], &["tag_pattern: \"v2.*\""]);
    bed.rebuild(&playbook).success();
    bed.assert_fetched("config", &bed.config_commits[1], &[("ref", "v1.2.0")]);
    // v2.10.0, not v2.9.3 (lexical order) nor v2.11.0-rc1 (a pre-release).
    bed.assert_fetched("app", &bed.app_commits[2], &[("ref", "v2.10.0")]);
    let pages = bed
        .github
        .requests()
        .iter()
        .filter(|seen| seen.path.starts_with("/repos/acme/shop/tags"))
        .count();
    assert!(
        pages >= 4,
        "the tags list was paged through ({pages} requests)"
    );
}

#[test]
fn an_annotated_tag_is_peeled_to_its_commit() {
    let bed = Bed::new();
    let tag_object = bed.app.rev_parse("refs/tags/v2.0.0");
    assert_ne!(tag_object, bed.app_commits[0]);
    let playbook = bed.playbook(&["tag: v1.0.0"], &["tag: v2.0.0"]);
    bed.rebuild(&playbook).success();
    bed.assert_fetched("app", &bed.app_commits[0], &[]);
    assert!(
        bed.github
            .requests()
            .iter()
            .any(|seen| seen.path == format!("/repos/acme/shop/git/tags/{tag_object}")),
        "the tag object was read through the API"
    );
}

#[test]
fn a_tag_moved_after_the_run_pinned_it_does_not_move_the_resumed_checkout() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    bed.rebuild_killed_at(&playbook, "config/resolved");
    assert!(
        bed.journals().contains(&bed.config_commits[1]),
        "the commit was pinned before the crash"
    );

    // Someone moves the tag while the run is down.
    bed.config.move_tag("v1.2.0", &bed.config_commits[2]);
    assert_eq!(bed.config.commit_of("v1.2.0"), bed.config_commits[2]);
    bed.github.clear_requests();

    bed.resume().success();
    bed.assert_fetched("config", &bed.config_commits[1], &[("ref", "v1.2.0")]);
    assert!(
        !bed.github
            .requests()
            .iter()
            .any(|seen| seen.path.contains("/repos/acme/shop-config/git/ref/tags")),
        "the resume resolved the tag again: {:?}",
        bed.github.requests()
    );
    assert_eq!(bed.status()["state"], "succeeded");
}

#[test]
fn a_crash_while_git_works_resumes_into_a_clean_checkout_of_the_pinned_commit() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.10.0"]);
    bed.rebuild_killed_at(&playbook, "app/fetching");
    bed.app.move_tag("v2.10.0", &bed.app_commits[3]);
    bed.resume().success();
    bed.assert_fetched("app", &bed.app_commits[2], &[]);
    bed.assert_fetched("config", &bed.config_commits[1], &[]);
}

#[test]
fn locks_left_by_a_killed_git_do_not_block_the_resume() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    bed.rebuild_killed_at(&playbook, "app/cloned");
    // What git leaves when it is killed while it writes HEAD, the index or a tag.
    let git = bed.run_checkout("app", "shop").join(".git");
    let locks = [
        "HEAD.lock",
        "index.lock",
        "config.lock",
        "refs/tags/v2.1.0.lock",
    ];
    for lock in locks {
        std::fs::write(git.join(lock), "").unwrap();
    }

    bed.resume().success();
    bed.assert_fetched("app", &bed.app_commits[1], &[]);
    for lock in locks {
        assert!(!git.join(lock).exists(), "{lock} is still there");
    }
}

#[test]
fn a_damaged_checkout_from_a_killed_attempt_is_checked_out_afresh() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    bed.rebuild_killed_at(&playbook, "app/cloned");
    let dir = bed.run_checkout("app", "shop");
    std::fs::write(dir.join(".git/index"), "half a write").unwrap();

    bed.resume()
        .success()
        .stderr_contains("is damaged")
        .stderr_contains("checking out afresh");
    bed.assert_fetched("app", &bed.app_commits[1], &[]);
}

#[test]
fn a_resume_after_the_checkout_reuses_it_without_the_network() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    bed.rebuild_killed_at(&playbook, "app/cloned");

    // The app repository is gone from its host and from the API: only the pins and the
    // earlier attempt's checkout can finish the step.
    let gone = bed.app.bare.with_extension("gone");
    std::fs::rename(&bed.app.bare, &gone).unwrap();
    bed.github.clear_requests();
    let output = bed.resume();
    output.success();
    bed.assert_fetched("app", &bed.app_commits[1], &[("ref", "v2.1.0")]);
    assert!(
        !bed.github
            .requests()
            .iter()
            .any(|seen| seen.path.contains("acme/shop/") || seen.path.contains("acme/shop.git")),
        "{:?}",
        bed.github.requests()
    );
    output.stderr_contains("adopted git-checkout");
}

#[test]
fn github_unreachable_falls_back_to_mirror_urls_and_still_pins_by_sha() {
    let bed = Bed::new();
    let config_mirror = bed.repos.mirror(&bed.config);
    let app_mirror = bed.repos.mirror(&bed.app);
    let relative = |path: &Path| {
        path.strip_prefix(bed.repos.root())
            .unwrap()
            .display()
            .to_string()
    };
    let playbook = bed.playbook(
        &[
            "tag: v1.2.0",
            &format!("mirror: {}", bed.daemon.url_of(&relative(&config_mirror))),
        ],
        &[
            "tag: v2.0.0",
            &format!("mirror: {}", bed.daemon.url_of(&relative(&app_mirror))),
        ],
    );
    bed.github.set_reachable(false);
    let output = bed.rebuild(&playbook);
    output
        .success()
        .stderr_contains("WARNING: the GitHub API is unreachable")
        // The plan said so.
        .stderr_contains("will be used");

    bed.assert_fetched(
        "config",
        &bed.config_commits[1],
        &[("source", "mirror"), ("ref", "v1.2.0")],
    );
    bed.assert_fetched("app", &bed.app_commits[0], &[("source", "mirror")]);
    assert!(
        bed.journals().contains(&bed.app_commits[0]),
        "pinned by SHA"
    );
    bed.assert_no_token(&output);
}

#[test]
fn github_unreachable_falls_back_to_bundle_mirrors() {
    let bed = Bed::new();
    let config_bundle = bed.repos.bundle(&bed.config);
    let app_bundle = bed.repos.bundle(&bed.app);
    let playbook = bed.playbook(
        &[
            "tag_pattern: \"v1.*\"",
            &format!("mirror: {}", config_bundle.display()),
        ],
        &["tag: v2.10.0", &format!("mirror: {}", app_bundle.display())],
    );
    bed.github.set_reachable(false);
    bed.rebuild(&playbook)
        .success()
        .stderr_contains("WARNING: the GitHub API is unreachable");
    bed.assert_fetched(
        "config",
        &bed.config_commits[1],
        &[("source", "mirror"), ("ref", "v1.2.0")],
    );
    // An annotated tag in a bundle is peeled too.
    bed.assert_fetched("app", &bed.app_commits[2], &[("source", "mirror")]);
}

#[test]
fn git_host_down_fetches_the_resolved_commit_from_the_mirror() {
    let mut bed = Bed::new();
    let config_mirror = bed.repos.mirror(&bed.config);
    let app_bundle = bed.repos.bundle(&bed.app);
    let playbook = bed.playbook(
        &[
            "tag: v1.2.0",
            &format!("mirror: {}", config_mirror.display()),
        ],
        &["tag: v2.1.0", &format!("mirror: {}", app_bundle.display())],
    );
    bed.daemon.stop();
    bed.rebuild(&playbook)
        .success()
        .stderr_contains("WARNING: fetching from GitHub `git://127.0.0.1:")
        .stderr_contains("trying the mirror");
    bed.assert_fetched("config", &bed.config_commits[1], &[("source", "mirror")]);
    bed.assert_fetched("app", &bed.app_commits[1], &[("source", "mirror")]);
}

#[test]
fn an_unknown_tag_is_refused_at_plan_time_naming_the_tags_that_exist() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v9.9.9"], &["tag: 2.1.0"]);
    bed.rebuild(&playbook)
        .code(4)
        .stderr_contains(
            "tag `v9.9.9` not found in `acme/shop-config` (newest tags: v1.2.0, v1.0.0)",
        )
        .stderr_contains("tag `2.1.0` not found in `acme/shop`; did you mean `v2.1.0`?")
        // The hint.
        .stderr_contains("git ls-remote --tags");
    assert!(!bed.has_folder("shop-config") && !bed.has_folder("shop"));
    assert!(bed.journals().is_empty(), "nothing was started");
}

#[test]
fn a_refused_token_is_reported_at_plan_time_and_never_printed() {
    let bed = Bed::new();
    let wrong = "ghp_WrongTokenWrongTokenWrongToken0002";
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    bed.rebuild_test(&playbook)
        .env("TEST_GITHUB_TOKEN", wrong)
        .run()
        .code(4)
        .stderr_contains(
            "GitHub refused the token for `acme/shop-config` (HTTP 401: Bad credentials)",
        )
        .stderr_contains("set `GITHUB_TOKEN`")
        .never_shows(wrong);
    assert!(!bed.has_folder("shop-config"));

    // Without any token.
    bed.rebuild_test(&playbook)
        .env_remove("TEST_GITHUB_TOKEN")
        .run()
        .code(4)
        .stderr_contains("GitHub wants a token for `acme/shop-config`");
}

#[test]
fn a_missing_repository_is_refused_at_plan_time() {
    let bed = Bed::new();
    let path = bed.dir.path().join("playbook.yaml");
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    let text = std::fs::read_to_string(&playbook)
        .unwrap()
        .replace("repo: acme/shop\n", "repo: acme/no-such-repo\n");
    std::fs::write(&path, text).unwrap();
    bed.rebuild(&path)
        .code(4)
        .stderr_contains("repository `acme/no-such-repo` not found at `http://127.0.0.1:")
        .stderr_contains("check `repo:`");
}

#[test]
fn github_unreachable_without_a_mirror_is_refused_before_any_change() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["tag: v2.1.0"]);
    bed.github.set_reachable(false);
    bed.rebuild(&playbook)
        .code(4)
        .stderr_contains("the GitHub API is unreachable")
        .stderr_contains("give the step a `mirror:`");
    assert!(!bed.has_folder("shop-config"));
}

#[test]
fn github_enterprise_api_and_git_over_http_use_the_github_token() {
    let bed = Bed::new();
    // git served by the stand-in itself (git http-backend), like a GitHub host.
    bed.github.set_clone_base(&bed.github.url);
    let api = format!("{}/api/v3", bed.github.url);
    let playbook = bed.playbook_with_api(&api, &["tag: v1.2.0"], &["tag_pattern: \"v2.*\""]);
    let text = std::fs::read_to_string(&playbook)
        .unwrap()
        .replace("      token: ${inputs.github_token}\n", "");
    std::fs::write(&playbook, text).unwrap();
    let output = bed
        .rebuild_test(&playbook)
        .env_remove("TEST_GITHUB_TOKEN")
        .env("GITHUB_TOKEN", TOKEN)
        .run();
    output.success();
    bed.assert_fetched("config", &bed.config_commits[1], &[]);
    bed.assert_fetched("app", &bed.app_commits[2], &[]);
    let requests = bed.github.requests();
    assert!(
        requests
            .iter()
            .any(|seen| seen.path.starts_with("/api/v3/repos/acme/shop-config")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|seen| seen.path
            == "/acme/shop-config.git/info/refs?service=git-upload-pack"
            && seen
                .authorization
                .as_deref()
                .is_some_and(|authorization| authorization.starts_with("Basic "))),
        "git over HTTP carried the token: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|seen| seen.method == "POST" && seen.path == "/acme/shop.git/git-upload-pack"),
        "{requests:?}"
    );
    bed.assert_no_token(&output);
}

#[test]
fn the_plan_cache_keeps_the_three_most_recently_planned_commits_of_a_repository() {
    let bed = Bed::new();
    let cache = bed.state.path().join("cache/git/acme__shop");
    let cached = || {
        let mut commits: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        commits.sort();
        commits
    };
    let expect = |indexes: &[usize]| {
        let mut commits: Vec<String> = indexes
            .iter()
            .map(|index| bed.app_commits[*index].clone())
            .collect();
        commits.sort();
        commits
    };
    let plan = |tag: &str| {
        let playbook = bed.playbook(&["tag: v1.2.0"], &[&format!("tag: {tag}")]);
        bed.plan(&playbook).success();
    };
    for tag in ["v2.0.0", "v2.1.0", "v2.10.0"] {
        plan(tag);
    }
    assert_eq!(cached(), expect(&[0, 1, 2]));
    plan("v2.11.0-rc1");
    assert_eq!(
        cached(),
        expect(&[1, 2, 3]),
        "the least recently planned went"
    );
    // Planning a cached commit again counts as using it.
    plan("v2.1.0");
    plan("v2.0.0");
    assert_eq!(cached(), expect(&[0, 1, 3]));
    // The other repository's cache is its own.
    assert_eq!(
        std::fs::read_dir(bed.state.path().join("cache/git/acme__shop-config"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn a_plan_shows_the_tag_and_commit_and_checks_out_only_into_its_cache() {
    let bed = Bed::new();
    let playbook = bed.playbook(&["tag: v1.2.0"], &["latest_release: true"]);
    let output = bed.plan(&playbook);
    output
        .success()
        .stdout_contains(&format!("commit: {}", bed.config_commits[1]))
        .stdout_contains("ref: v2.1.0");
    // No run: its checkouts are made in the state directory's cache (for planning the
    // later steps), at exactly the planned commits.
    assert!(!bed.has_folder("runs"));
    let cached = bed
        .state
        .path()
        .join("cache/git/acme__shop-config")
        .join(&bed.config_commits[1]);
    assert_eq!(checkout_head(&cached).0, bed.config_commits[1]);
    output.stdout_contains(&format!("planned from: {}", cached.display()));

    // The cached checkout is made once, in a private folder renamed into place, and never
    // written again: a lock there (another plan at work, or a killed one) stops nothing.
    let head = cached.join(".git/HEAD");
    let written = std::fs::metadata(&head).unwrap().modified().unwrap();
    std::fs::write(cached.join(".git/HEAD.lock"), "").unwrap();
    bed.plan(&playbook)
        .success()
        .stdout_contains(&format!("planned from: {}", cached.display()));
    assert_eq!(
        std::fs::metadata(&head).unwrap().modified().unwrap(),
        written
    );
    let siblings: Vec<_> = std::fs::read_dir(cached.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(siblings, [OsString::from(&bed.config_commits[1])]);
}
