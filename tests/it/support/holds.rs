//! The proxy's per-service status holds: moto makes resources ready at once, so the proxy
//! remembers when each RDS instance or cluster, NAT gateway and EKS cluster or node group
//! was created and, while a hold is set and the resource is younger than it, rewrites
//! moto's answers to say it is still being created (`creating`, `pending`, `CREATING`).
//!
//! RDS instances follow RDS's own sequences (the RDS status table): after a restore
//! `creating` (no endpoint), then `backing-up`, then `available` — or, on demand, a failure
//! state they never leave (`restore-error`, `incompatible-parameters`,
//! `insufficient-capacity`); after `ModifyDBInstance` with `MasterUserPassword`,
//! `resetting-master-credentials` with `PendingModifiedValues.MasterUserPassword` for a
//! while; and, for eventual consistency, `DBInstanceNotFound` for a while right after the
//! restore.
//!
//! On demand it also makes new NAT gateways `failed` (with `failureCode`/`failureMessage`)
//! and new node groups `CREATE_FAILED` (with `health.issues`), as AWS reports them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How long new resources of each service are held (`None`: not held).
#[derive(Default)]
pub(super) struct Holds {
    pub rds: Option<Duration>,
    pub nat: Option<Duration>,
    pub eks: Option<Duration>,
    /// EKS node groups' own hold (`None`: as `eks`).
    pub eks_nodegroup: Option<Duration>,
    /// RDS instances' sequences beyond `creating`.
    pub rds_instances: RdsInstanceHolds,
    /// New NAT gateways fail with this (code, message).
    pub nat_failure: Option<(String, String)>,
    /// New node groups fail with this health issue (code, message).
    pub nodegroup_failure: Option<(String, String)>,
}

/// How RDS instances go on after `creating` (each `None`/zero: not at all).
#[derive(Default)]
pub(super) struct RdsInstanceHolds {
    /// `backing-up` for this long after `creating`.
    pub backing_up: Option<Duration>,
    /// The state instances created from now on end in instead of `available`.
    pub fails_with: Option<String>,
    /// `resetting-master-credentials` for this long after a password change.
    pub password_reset: Option<Duration>,
    /// `DBInstanceNotFound` for this long after the restore.
    pub invisible: Option<Duration>,
}

/// An RDS instance as the proxy saw it created.
#[derive(Debug, Clone)]
struct RdsInstance {
    created: Instant,
    /// The failure state it ends in, chosen when it was created.
    fails_with: Option<String>,
}

/// When each resource was created, as seen by the proxy.
#[derive(Default)]
pub(super) struct Creations {
    /// (region, lower-case DBInstanceIdentifier) -> when the create/restore was seen.
    rds_instances: HashMap<(String, String), RdsInstance>,
    /// (region, lower-case DBInstanceIdentifier) -> time of the last password change.
    rds_password_changes: HashMap<(String, String), Instant>,
    /// (region, lower-case DBClusterIdentifier) -> time the create/restore was seen.
    rds_clusters: HashMap<(String, String), Instant>,
    /// NAT gateway id -> time the CreateNatGateway was seen.
    nat_gateways: HashMap<String, Instant>,
    /// (region, EKS path `/clusters/NAME` or `/clusters/NAME/node-groups/GROUP`) -> time
    /// the create was seen.
    eks_resources: HashMap<(String, String), Instant>,
    /// Held resources (by label) -> when their hold ran out and when an answer first
    /// showed them ready: how late the tool noticed.
    noticed: HashMap<String, Notice>,
    /// NAT gateway id -> (failureCode, failureMessage), for those made to fail.
    failed_nats: HashMap<String, (String, String)>,
    /// (region, node group path) -> (issue code, message), for those made to fail.
    failed_nodegroups: HashMap<(String, String), (String, String)>,
}

/// When a held resource became ready and when an answer first said so.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What it is: `rds instance ID`, `rds cluster ID`, `nat gateway ID`, `eks PATH`.
    pub resource: String,
    /// When its hold ran out.
    pub ready_at: Instant,
    /// When the first answer after that was sent.
    pub noticed_at: Instant,
}

impl Notice {
    /// How long it was ready before an answer said so.
    pub fn late(&self) -> Duration {
        self.noticed_at.saturating_duration_since(self.ready_at)
    }
}

const RDS_INSTANCE_CREATES: [&str; 4] = [
    "CreateDBInstance",
    "RestoreDBInstanceFromDBSnapshot",
    "RestoreDBInstanceToPointInTime",
    "CreateDBInstanceReadReplica",
];
const RDS_CLUSTER_CREATES: [&str; 3] = [
    "CreateDBCluster",
    "RestoreDBClusterFromSnapshot",
    "RestoreDBClusterToPointInTime",
];

/// One successful upstream answer, with the request it answers.
pub(super) struct Answer<'a> {
    pub operation: &'a str,
    pub region: &'a str,
    pub form: &'a [(String, String)],
    pub request_body: &'a [u8],
    pub body: &'a Bytes,
    pub seen_at: Instant,
}

impl Creations {
    /// Remember the resources `answer` created (and RDS password changes).
    pub(super) fn record(&mut self, holds: &Holds, answer: &Answer<'_>) {
        let operation = answer.operation;
        let region = answer.region.to_string();
        if let Some(path) = eks_created_path(operation, answer.request_body) {
            if path.contains("/node-groups/")
                && let Some(failure) = &holds.nodegroup_failure
            {
                self.failed_nodegroups
                    .insert((region.clone(), path.clone()), failure.clone());
            }
            self.eks_resources
                .insert((region.clone(), path), answer.seen_at);
        }
        if RDS_INSTANCE_CREATES.contains(&operation)
            && let Some(id) = form_get(answer.form, "DBInstanceIdentifier")
        {
            self.rds_instances.insert(
                (region.clone(), id.to_ascii_lowercase()),
                RdsInstance {
                    created: answer.seen_at,
                    fails_with: holds.rds_instances.fails_with.clone(),
                },
            );
        }
        if operation == "ModifyDBInstance"
            && form_get(answer.form, "MasterUserPassword").is_some()
            && let Some(id) = form_get(answer.form, "DBInstanceIdentifier")
        {
            self.rds_password_changes
                .insert((region.clone(), id.to_ascii_lowercase()), answer.seen_at);
        }
        if RDS_CLUSTER_CREATES.contains(&operation)
            && let Some(id) = form_get(answer.form, "DBClusterIdentifier")
        {
            self.rds_clusters
                .insert((region, id.to_ascii_lowercase()), answer.seen_at);
        }
        if operation == "CreateNatGateway" {
            let text = String::from_utf8_lossy(answer.body);
            for node in scan_xml(&text)
                .iter()
                .filter(|node| node.name == "natGatewayId")
            {
                let id = text[node.inner_start..node.inner_end].to_string();
                if let Some(failure) = &holds.nat_failure {
                    self.failed_nats.insert(id.clone(), failure.clone());
                }
                self.nat_gateways.insert(id, answer.seen_at);
            }
        }
    }

    /// `answer`'s body rewritten for the resources `holds` still hold, if any.
    pub(super) fn held(&self, holds: &Holds, answer: &Answer<'_>) -> Option<String> {
        let operation = answer.operation;
        let region = answer.region;
        let now = Instant::now();
        let young = |created: &Instant, hold: Duration| now.duration_since(*created) < hold;
        let mut rewritten = None;
        let instance_answer = operation == "DescribeDBInstances"
            || operation == "ModifyDBInstance"
            || RDS_INSTANCE_CREATES.contains(&operation);
        if instance_answer {
            let body = String::from_utf8_lossy(answer.body);
            let view = |id: &str| self.instance_view(holds, region, id, now);
            let changed = rds_instances(&body, view);
            if changed != body {
                rewritten = Some(changed);
            }
        } else if let Some(hold) = holds.rds
            && (operation == "DescribeDBClusters" || RDS_CLUSTER_CREATES.contains(&operation))
        {
            let body = String::from_utf8_lossy(answer.body);
            let held = |id: &str| {
                self.rds_clusters
                    .get(&(region.to_string(), id.to_ascii_lowercase()))
                    .is_some_and(|created| young(created, hold))
            };
            rewritten = Some(CLUSTER_CREATING.apply(&body, held));
        }
        if let Some(hold) = holds.nat
            && (operation == "DescribeNatGateways" || operation == "CreateNatGateway")
        {
            let held = |id: &str| {
                self.nat_gateways
                    .get(id)
                    .is_some_and(|created| young(created, hold))
            };
            rewritten = Some(nat_pending(&String::from_utf8_lossy(answer.body), held));
        }
        if let Some(path) = eks_described_path(operation, answer.body)
            && let Some(hold) = eks_hold(holds, &path)
            && self
                .eks_resources
                .get(&(region.to_string(), path))
                .is_some_and(|created| young(created, hold))
        {
            rewritten = Some(eks_creating(answer.body));
        }
        rewritten
    }

    /// Note the held resources `answer` describes whose hold has run out, the first time
    /// an answer shows each (see [`Notice`]).
    pub(super) fn notice(&mut self, holds: &Holds, answer: &Answer<'_>) {
        let now = Instant::now();
        let region = answer.region.to_string();
        let text = String::from_utf8_lossy(answer.body);
        let values = |name: &str| -> Vec<String> {
            scan_xml(&text)
                .iter()
                .filter(|node| node.name == name)
                .map(|node| text[node.inner_start..node.inner_end].to_string())
                .collect()
        };
        let mut ready: Vec<(String, Instant)> = Vec::new();
        match answer.operation {
            "DescribeDBInstances" if holds.rds.is_some() => {
                let hold = holds.rds.unwrap_or_default()
                    + holds.rds_instances.backing_up.unwrap_or_default();
                for id in values("DBInstanceIdentifier") {
                    let key = (region.clone(), id.to_ascii_lowercase());
                    if let Some(instance) = self.rds_instances.get(&key)
                        && instance.fails_with.is_none()
                    {
                        ready.push((format!("rds instance {id}"), instance.created + hold));
                    }
                }
            }
            "DescribeDBClusters" if holds.rds.is_some() => {
                for id in values("DBClusterIdentifier") {
                    let key = (region.clone(), id.to_ascii_lowercase());
                    if let Some(created) = self.rds_clusters.get(&key) {
                        let hold = holds.rds.unwrap_or_default();
                        ready.push((format!("rds cluster {id}"), *created + hold));
                    }
                }
            }
            "DescribeNatGateways" if holds.nat.is_some() => {
                for id in values("natGatewayId") {
                    if let Some(created) = self.nat_gateways.get(&id)
                        && !self.failed_nats.contains_key(&id)
                    {
                        let hold = holds.nat.unwrap_or_default();
                        ready.push((format!("nat gateway {id}"), *created + hold));
                    }
                }
            }
            operation => {
                if let Some(path) = eks_described_path(operation, answer.body)
                    && let Some(hold) = eks_hold(holds, &path)
                    && let Some(created) = self.eks_resources.get(&(region.clone(), path.clone()))
                {
                    ready.push((format!("eks {path}"), *created + hold));
                }
            }
        }
        for (resource, ready_at) in ready {
            if ready_at <= now && !self.noticed.contains_key(&resource) {
                let notice = Notice {
                    resource: resource.clone(),
                    ready_at,
                    noticed_at: now,
                };
                self.noticed.insert(resource, notice);
            }
        }
    }

    /// Every held resource an answer has shown ready, in the order they became ready.
    pub(super) fn notices(&self) -> Vec<Notice> {
        let mut notices: Vec<Notice> = self.noticed.values().cloned().collect();
        notices.sort_by_key(|notice| notice.ready_at);
        notices
    }
}

/// How long the EKS resource at `path` is held: node groups by their own hold if set.
fn eks_hold(holds: &Holds, path: &str) -> Option<Duration> {
    if path.contains("/node-groups/") {
        holds.eks_nodegroup.or(holds.eks)
    } else {
        holds.eks
    }
}

impl Creations {
    /// How the RDS instance `id` looks at `now`, if not as moto says.
    fn instance_view(&self, holds: &Holds, region: &str, id: &str, now: Instant) -> Option<View> {
        let key = (region.to_string(), id.to_ascii_lowercase());
        if let Some(instance) = self.rds_instances.get(&key) {
            let age = now.duration_since(instance.created);
            let creating = holds.rds.unwrap_or_default();
            let backing_up = creating + holds.rds_instances.backing_up.unwrap_or_default();
            if age < creating {
                return Some(View::status("creating", false));
            }
            if age < backing_up {
                return Some(View::status("backing-up", true));
            }
            if let Some(failed) = &instance.fails_with {
                return Some(View::status(failed, false));
            }
        }
        let changed = self.rds_password_changes.get(&key)?;
        let reset = holds.rds_instances.password_reset?;
        (now.duration_since(*changed) < reset).then(|| View {
            status: "resetting-master-credentials".into(),
            endpoint: true,
            pending_password: true,
        })
    }

    /// Whether a `DescribeDBInstances` of `form`'s instance must answer `DBInstanceNotFound`
    /// (it was restored too recently to be visible, as RDS's eventual consistency has it).
    pub(super) fn rds_invisible(
        &self,
        holds: &Holds,
        operation: &str,
        region: &str,
        form: &[(String, String)],
    ) -> Option<String> {
        let window = holds.rds_instances.invisible?;
        if operation != "DescribeDBInstances" {
            return None;
        }
        let id = form_get(form, "DBInstanceIdentifier")?;
        let instance = self
            .rds_instances
            .get(&(region.to_string(), id.to_ascii_lowercase()))?;
        (instance.created.elapsed() < window).then(|| id.to_string())
    }
}

/// What an RDS instance's answer says instead of moto's.
#[derive(Debug)]
struct View {
    status: String,
    /// Whether `<Endpoint>` stays.
    endpoint: bool,
    /// Whether `PendingModifiedValues.MasterUserPassword` is there.
    pending_password: bool,
}

impl View {
    fn status(status: &str, endpoint: bool) -> Self {
        Self {
            status: status.to_string(),
            endpoint,
            pending_password: false,
        }
    }
}

/// Every `DBInstance` element rewritten as `view` says.
fn rds_instances(xml: &str, view: impl Fn(&str) -> Option<View>) -> String {
    let nodes = scan_xml(xml);
    let mut edits = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        if node.name != "DBInstance" {
            continue;
        }
        let Some(id) = child(&nodes, index, "DBInstanceIdentifier") else {
            continue;
        };
        let Some(view) = view(&xml[id.inner_start..id.inner_end]) else {
            continue;
        };
        if let Some(status) = child(&nodes, index, "DBInstanceStatus") {
            edits.push((status.inner_start, status.inner_end, view.status.clone()));
        }
        if !view.endpoint
            && let Some(endpoint) = child(&nodes, index, "Endpoint")
        {
            edits.push((endpoint.open_start, endpoint.close_end, String::new()));
        }
        if view.pending_password {
            match child(&nodes, index, "PendingModifiedValues") {
                Some(pending) => edits.push((
                    pending.inner_start,
                    pending.inner_start,
                    "<MasterUserPassword>****</MasterUserPassword>".to_string(),
                )),
                None => edits.push((
                    node.inner_end,
                    node.inner_end,
                    "<PendingModifiedValues><MasterUserPassword>****</MasterUserPassword></PendingModifiedValues>"
                        .to_string(),
                )),
            }
        }
    }
    apply_edits(xml, edits)
}

impl Creations {
    /// `body` (the answer, maybe already held) rewritten for the resources made to fail:
    /// a NAT gateway `failed` with its `failureCode`/`failureMessage`; a node group no
    /// longer `CREATING` becomes `CREATE_FAILED` with its `health.issues`.
    pub(super) fn failed(&self, answer: &Answer<'_>, body: &[u8]) -> Option<String> {
        let operation = answer.operation;
        if operation == "DescribeNatGateways" && !self.failed_nats.is_empty() {
            return Some(nat_failed(&String::from_utf8_lossy(body), |id| {
                self.failed_nats.get(id)
            }));
        }
        let path = operation.strip_prefix("GET ")?;
        let (code, message) = self
            .failed_nodegroups
            .get(&(answer.region.to_string(), path.to_string()))?;
        let mut json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let group = json.get_mut("nodegroup")?.as_object_mut()?;
        if group.get("status").and_then(|status| status.as_str()) == Some("CREATING") {
            return None;
        }
        group.insert("status".into(), "CREATE_FAILED".into());
        group.insert(
            "health".into(),
            serde_json::json!({"issues": [{
                "code": code,
                "message": message,
                "resourceIds": [format!("eks-{}", path.rsplit('/').next().unwrap_or_default())],
            }]}),
        );
        Some(json.to_string())
    }
}

/// Every NAT gateway element whose `<natGatewayId>` has a failure gets `<state>failed</state>`
/// followed by its `<failureCode>` and `<failureMessage>`.
fn nat_failed<'a>(xml: &str, failure: impl Fn(&str) -> Option<&'a (String, String)>) -> String {
    let nodes = scan_xml(xml);
    let mut edits = Vec::new();
    for node in nodes.iter().filter(|node| node.name == "natGatewayId") {
        let Some((code, message)) = failure(&xml[node.inner_start..node.inner_end]) else {
            continue;
        };
        let Some(parent) = node.parent else { continue };
        if let Some(state) = child(&nodes, parent, "state") {
            edits.push((
                state.open_start,
                state.close_end,
                format!(
                    "<state>failed</state><failureCode>{code}</failureCode><failureMessage>{message}</failureMessage>"
                ),
            ));
        }
    }
    apply_edits(xml, edits)
}

/// The value of `key` in form parameters.
pub(super) fn form_get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// For `POST /clusters` and `POST /clusters/C/node-groups`, the path of what was created.
fn eks_created_path(operation: &str, request_body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(request_body).ok()?;
    if operation == "POST /clusters" {
        return Some(format!("/clusters/{}", json.get("name")?.as_str()?));
    }
    let cluster = operation
        .strip_prefix("POST /clusters/")?
        .strip_suffix("/node-groups")?;
    Some(format!(
        "/clusters/{cluster}/node-groups/{}",
        json.get("nodegroupName")?.as_str()?
    ))
}

/// For EKS answers that describe one cluster or node group (describe and create), its path.
fn eks_described_path(operation: &str, body: &[u8]) -> Option<String> {
    if let Some(path) = operation.strip_prefix("GET ") {
        return path.starts_with("/clusters/").then(|| path.to_string());
    }
    // The create answers: derive the path from the returned object.
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    if operation == "POST /clusters" {
        return Some(format!(
            "/clusters/{}",
            json.get("cluster")?.get("name")?.as_str()?
        ));
    }
    let group = json.get("nodegroup")?;
    Some(format!(
        "/clusters/{}/node-groups/{}",
        group.get("clusterName")?.as_str()?,
        group.get("nodegroupName")?.as_str()?
    ))
}

/// `status` → `CREATING` in a cluster or node group answer; a creating cluster has no endpoint.
fn eks_creating(body: &[u8]) -> String {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body).into_owned();
    };
    if let Some(cluster) = json
        .get_mut("cluster")
        .and_then(|value| value.as_object_mut())
    {
        cluster.insert("status".into(), serde_json::Value::from("CREATING"));
        cluster.remove("endpoint");
    }
    if let Some(group) = json
        .get_mut("nodegroup")
        .and_then(|value| value.as_object_mut())
    {
        group.insert("status".into(), serde_json::Value::from("CREATING"));
    }
    json.to_string()
}

/// An XML element's byte spans in the document.
#[derive(Debug)]
pub(in crate::support) struct Node {
    pub name: String,
    pub open_start: usize,
    pub inner_start: usize,
    pub inner_end: usize,
    pub close_end: usize,
    pub parent: Option<usize>,
}

/// A tolerant scan of a (well-formed, entity-escaped) XML document into element spans.
pub(in crate::support) fn scan_xml(xml: &str) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let bytes = xml.as_bytes();
    let mut position = 0;
    while let Some(offset) = xml[position..].find('<') {
        let start = position + offset;
        let Some(end_offset) = xml[start..].find('>') else {
            break;
        };
        let end = start + end_offset + 1; // one past '>'
        let tag = &xml[start + 1..end - 1];
        position = end;
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            // Pop up to the matching open element.
            while let Some(index) = open.pop() {
                if nodes[index].name == name {
                    nodes[index].inner_end = start;
                    nodes[index].close_end = end;
                    break;
                }
            }
            continue;
        }
        let self_closing = bytes[end - 2] == b'/';
        let name = tag
            .trim_end_matches('/')
            .split(char::is_whitespace)
            .next()
            .unwrap_or("")
            .to_string();
        let index = nodes.len();
        nodes.push(Node {
            name,
            open_start: start,
            inner_start: end,
            inner_end: end,
            close_end: end,
            parent: open.last().copied(),
        });
        if !self_closing {
            open.push(index);
        }
    }
    nodes
}

/// The first direct child of `parent` named `name`.
pub(in crate::support) fn child<'a>(
    nodes: &'a [Node],
    parent: usize,
    name: &str,
) -> Option<&'a Node> {
    nodes
        .iter()
        .find(|node| node.parent == Some(parent) && node.name == name)
}

/// Replace byte ranges `(start, end, text)` of `xml` (ranges do not overlap).
pub(in crate::support) fn apply_edits(xml: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|edit| std::cmp::Reverse(edit.0));
    let mut out = xml.to_string();
    for (start, end, text) in edits {
        out.replace_range(start..end, &text);
    }
    out
}

/// A status rewrite of one kind of RDS element.
struct StatusRewrite {
    /// The element, e.g. `DBInstance`.
    element: &'static str,
    /// Its child holding the identifier.
    id_tag: &'static str,
    /// Its child holding the status.
    status_tag: &'static str,
    /// The status replaced…
    from: &'static str,
    /// …by this one.
    to: &'static str,
    /// Whether a held element loses its `<Endpoint>` child.
    drop_endpoint: bool,
}

const CLUSTER_CREATING: StatusRewrite = StatusRewrite {
    element: "DBCluster",
    id_tag: "DBClusterIdentifier",
    status_tag: "Status",
    from: "available",
    to: "creating",
    drop_endpoint: false,
};

impl StatusRewrite {
    /// In every element whose identifier is `held`, the status `from` becomes `to` (and
    /// the endpoint goes, if asked).
    fn apply(&self, xml: &str, held: impl Fn(&str) -> bool) -> String {
        let nodes = scan_xml(xml);
        let mut edits = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            if node.name != self.element {
                continue;
            }
            let Some(id) = child(&nodes, index, self.id_tag) else {
                continue;
            };
            if !held(&xml[id.inner_start..id.inner_end]) {
                continue;
            }
            if let Some(status) = child(&nodes, index, self.status_tag)
                && &xml[status.inner_start..status.inner_end] == self.from
            {
                edits.push((status.inner_start, status.inner_end, self.to.to_string()));
            }
            if self.drop_endpoint
                && let Some(endpoint) = child(&nodes, index, "Endpoint")
            {
                edits.push((endpoint.open_start, endpoint.close_end, String::new()));
            }
        }
        apply_edits(xml, edits)
    }
}

/// Every NAT gateway element (parent of a held `<natGatewayId>`) gets `<state>pending</state>`
/// instead of `available`.
fn nat_pending(xml: &str, held: impl Fn(&str) -> bool) -> String {
    let nodes = scan_xml(xml);
    let mut edits = Vec::new();
    for node in nodes.iter().filter(|node| node.name == "natGatewayId") {
        if !held(&xml[node.inner_start..node.inner_end]) {
            continue;
        }
        let Some(parent) = node.parent else { continue };
        if let Some(state) = child(&nodes, parent, "state")
            && &xml[state.inner_start..state.inner_end] == "available"
        {
            edits.push((state.inner_start, state.inner_end, "pending".to_string()));
        }
    }
    apply_edits(xml, edits)
}
