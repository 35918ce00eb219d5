//! The stand-in's REST routes, one function each, answered from the bare repositories:
//! `GET /repos/{o}/{r}`, `GET /repos/{o}/{r}/git/ref/tags/{tag}` (the tag may hold `/`),
//! `GET /repos/{o}/{r}/git/tags/{sha}`, `GET /repos/{o}/{r}/tags` (paginated with
//! `Link`) and `GET /repos/{o}/{r}/releases/latest`; everything else is GitHub's 404.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Shared;

/// An answer of the stand-in.
pub(super) type Answer = Response<Full<Bytes>>;

/// A response with a body of `content_type`.
pub(super) fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
    let length = body.len();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a valid content type"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

fn respond_json(status: u16, body: &Value) -> Answer {
    respond(
        status,
        "application/json; charset=utf-8",
        serde_json::to_vec(body).expect("JSON serialises"),
    )
}

fn not_found() -> Answer {
    respond_json(
        404,
        &json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest",
            "status": "404"
        }),
    )
}

fn bad_credentials() -> Answer {
    respond_json(
        401,
        &json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        }),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[index + 1..index + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| percent_decode(value))
}

/// `git ARGS` in `dir`: stdout trimmed, or `None` when it fails.
fn git_out(dir: &Path, args: &[&str]) -> Option<String> {
    let output = super::super::git::git()
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `tags` for a tag object, `commits` for anything else (GitHub's URL segment).
fn plural(kind: &str) -> &'static str {
    if kind == "tag" { "tags" } else { "commits" }
}

/// The REST API as seen from one request.
pub(super) struct Api<'a> {
    pub shared: &'a Shared,
    /// `http://HOST` or `http://HOST/api/v3`.
    pub base: String,
    /// The request's `Host`.
    pub host: String,
}

/// One repository a request is about.
struct Repository {
    owner: String,
    name: String,
    full_name: String,
    bare: PathBuf,
    /// `BASE/repos/OWNER/NAME`.
    url: String,
}

impl Api<'_> {
    /// The answer to `METHOD PATH?QUERY`, after checking the token.
    pub(super) fn answer(
        &self,
        method: &hyper::Method,
        path: &str,
        query: &str,
        token: Option<&str>,
        authorization: Option<&str>,
    ) -> Answer {
        if let Some(token) = token {
            let given = authorization.and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("token "))
            });
            if given != Some(token) {
                return bad_credentials();
            }
        }
        if method != hyper::Method::GET {
            return not_found();
        }
        let Some(rest) = path.strip_prefix("/repos/") else {
            return not_found();
        };
        let mut segments = rest.splitn(3, '/');
        let (Some(owner), Some(name)) = (segments.next(), segments.next()) else {
            return not_found();
        };
        let tail = segments.next().unwrap_or("");
        let full_name = format!("{owner}/{name}");
        let bare = self.shared.root.join(format!("{full_name}.git"));
        if !bare.is_dir() {
            return not_found();
        }
        let repository = Repository {
            owner: owner.to_string(),
            name: name.to_string(),
            url: format!("{}/repos/{full_name}", self.base),
            full_name,
            bare,
        };
        if tail.is_empty() {
            self.repository(&repository)
        } else if let Some(tag) = tail.strip_prefix("git/ref/tags/") {
            tag_ref(&repository, &percent_decode(tag))
        } else if let Some(sha) = tail.strip_prefix("git/tags/") {
            tag_object(&repository, sha)
        } else if tail == "tags" {
            self.tags(&repository, query)
        } else if tail == "releases/latest" {
            self.latest_release(&repository)
        } else {
            not_found()
        }
    }

    /// `GET /repos/{o}/{r}`.
    fn repository(&self, repository: &Repository) -> Answer {
        let clone_base = self.shared.lock().clone_base.clone();
        let Repository {
            owner,
            name,
            full_name,
            url,
            ..
        } = repository;
        let host = &self.host;
        respond_json(
            200,
            &json!({
                "id": 1296269,
                "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
                "name": name,
                "full_name": full_name,
                "private": true,
                "owner": {"login": owner, "id": 1, "type": "Organization"},
                "html_url": format!("http://{host}/{full_name}"),
                "description": "a repository of the stand-in",
                "fork": false,
                "url": url,
                "tags_url": format!("{url}/tags"),
                "git_url": format!("git://{host}/{full_name}.git"),
                "clone_url": format!("{clone_base}/{full_name}.git"),
                "default_branch": "main",
                "visibility": "private",
                "archived": false
            }),
        )
    }

    /// `GET /repos/{o}/{r}/tags`, newest name first, paginated with `Link`.
    fn tags(&self, repository: &Repository, query: &str) -> Answer {
        let max_per_page = self.shared.lock().max_per_page;
        let url = &repository.url;
        let listing = git_out(
            &repository.bare,
            &[
                "for-each-ref",
                "--sort=-refname",
                "--format=%(refname:strip=2)%09%(objectname)%09%(*objectname)",
                "refs/tags",
            ],
        )
        .unwrap_or_default();
        let all: Vec<Value> = listing
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut fields = line.split('\t');
                let name = fields.next().unwrap_or("");
                let object = fields.next().unwrap_or("");
                let peeled = fields
                    .next()
                    .filter(|peeled| !peeled.is_empty())
                    .unwrap_or(object);
                json!({
                    "name": name,
                    "commit": {"sha": peeled, "url": format!("{url}/commits/{peeled}")},
                    "zipball_url": format!("{url}/zipball/refs/tags/{name}"),
                    "tarball_url": format!("{url}/tarball/refs/tags/{name}"),
                    "node_id": "MDM6VGFn"
                })
            })
            .collect();
        let per_page = query_value(query, "per_page")
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, max_per_page);
        let page = query_value(query, "page")
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let pages = all.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        let mut response = respond_json(200, &Value::Array(items));
        let link = |target: usize, relation: &str| {
            format!("<{url}/tags?per_page={per_page}&page={target}>; rel=\"{relation}\"")
        };
        let mut links = Vec::new();
        if page < pages {
            links.push(link(page + 1, "next"));
            links.push(link(pages, "last"));
        }
        if page > 1 {
            links.push(link(page - 1, "prev"));
            links.push(link(1, "first"));
        }
        if !links.is_empty() {
            response.headers_mut().insert(
                header::LINK,
                HeaderValue::from_str(&links.join(", ")).expect("a valid Link header"),
            );
        }
        response
    }

    /// `GET /repos/{o}/{r}/releases/latest`.
    fn latest_release(&self, repository: &Repository) -> Answer {
        let latest = self
            .shared
            .lock()
            .latest_release
            .get(&repository.full_name)
            .cloned();
        let Some(tag) = latest else {
            return not_found();
        };
        let url = &repository.url;
        respond_json(
            200,
            &json!({
                "url": format!("{url}/releases/1"),
                "html_url": format!("http://{}/{}/releases/tag/{tag}", self.host, repository.full_name),
                "assets_url": format!("{url}/releases/1/assets"),
                "upload_url": format!("{url}/releases/1/assets{{?name,label}}"),
                "tarball_url": format!("{url}/tarball/{tag}"),
                "zipball_url": format!("{url}/zipball/{tag}"),
                "id": 1,
                "node_id": "MDc6UmVsZWFzZTE=",
                "tag_name": tag,
                "target_commitish": "main",
                "name": format!("Release {tag}"),
                "body": "",
                "draft": false,
                "prerelease": false,
                "created_at": "2025-01-01T00:00:00Z",
                "published_at": "2025-01-01T00:00:00Z",
                "author": {"login": "release-bot", "id": 2, "type": "Bot"},
                "assets": []
            }),
        )
    }
}

/// `GET /repos/{o}/{r}/git/ref/tags/{tag}`.
fn tag_ref(repository: &Repository, tag: &str) -> Answer {
    let bare = &repository.bare;
    let url = &repository.url;
    let reference = format!("refs/tags/{tag}");
    let Some(sha) = git_out(bare, &["rev-parse", "--verify", "--quiet", &reference]) else {
        return not_found();
    };
    let kind = git_out(bare, &["cat-file", "-t", &sha]).unwrap_or_default();
    respond_json(
        200,
        &json!({
            "ref": reference,
            "node_id": "MDM6UmVmcmVmcy90YWdz",
            "url": format!("{url}/git/refs/tags/{tag}"),
            "object": {
                "type": kind,
                "sha": sha,
                "url": format!("{url}/git/{}/{sha}", plural(&kind))
            }
        }),
    )
}

/// `GET /repos/{o}/{r}/git/tags/{sha}`: an annotated tag object.
fn tag_object(repository: &Repository, sha: &str) -> Answer {
    let bare = &repository.bare;
    let url = &repository.url;
    let Some(text) = git_out(bare, &["cat-file", "-p", sha])
        .filter(|_| git_out(bare, &["cat-file", "-t", sha]).as_deref() == Some("tag"))
    else {
        return not_found();
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key} ")))
            .unwrap_or("")
            .to_string()
    };
    let message = text.split_once("\n\n").map_or("", |(_, message)| message);
    let object = field("object");
    let kind = field("type");
    respond_json(
        200,
        &json!({
            "node_id": "MDM6VGFnOTQwYmQzMzYyNDhlZmFlMGY5ZWU1YmM3YjJkNWM5ODU4ODdiMTZhYw==",
            "tag": field("tag"),
            "sha": sha,
            "url": format!("{url}/git/tags/{sha}"),
            "message": message,
            "tagger": {"name": "Rebuild Test", "email": "test@rebuild.invalid", "date": "2025-01-01T00:00:00Z"},
            "object": {"type": kind, "sha": object, "url": format!("{url}/git/{}/{object}", plural(&kind))},
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null}
        }),
    )
}
