//! EC2 as strict as AWS, where moto is not.
//!
//! - **Quotas.** Past the region's quota, `CreateVpc` fails with `VpcLimitExceeded` and
//!   `AllocateAddress` with `AddressLimitExceeded` (AWS's defaults: 5 VPCs, the default VPC
//!   included, and 5 Elastic IPs per region; Amazon VPC quotas). The proxy counts what moto
//!   holds in the request's region before forwarding ([`QuotaCheck`]). `GetServiceQuota`
//!   answers for `vpc`/`L-F678F1CE` and `ec2`/`L-0263D0A3` with the same limits (moto knows
//!   only the first, at its default), and for two quotas the plan reads but the proxy does
//!   not enforce: NAT gateways per zone (`vpc`/`L-FE5A380F`, AWS's default 5) and Running
//!   On-Demand Standard instances in vCPUs (`ec2`/`L-1216C47A`; 32 here, a common value for
//!   a young account, room for the default playbook's 9 two-vCPU nodes).
//! - **Eventual consistency** (EC2 API eventual consistency, off unless a test sets a
//!   window): for the window after a create, a call naming the new id answers the
//!   matching `Invalid…ID.NotFound` (`InvalidGroup.NotFound`, `NatGatewayNotFound`), and
//!   `Describe*` filtered by tags does not list the new resource yet.
//! - **Client tokens.** `CreateNatGateway` and `CreateRouteTable` with a `ClientToken` used
//!   before answer what the first call answered, without creating anything (moto ignores
//!   the token and creates a duplicate); with other parameters, `IdempotentParameterMismatch`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::super::aws_wire::ec2_error;
use super::super::holds::{apply_edits, child, form_get, scan_xml};
use super::{json_error, json_response};

/// The quota codes Service Quotas knows these limits by.
const VPC_QUOTA: (&str, &str, &str) = ("vpc", "L-F678F1CE", "VPCs per Region");
const ADDRESS_QUOTA: (&str, &str, &str) = ("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs");
const NAT_QUOTA: (&str, &str, &str) = ("vpc", "L-FE5A380F", "NAT gateways per Availability Zone");
const VCPU_QUOTA: (&str, &str, &str) = (
    "ec2",
    "L-1216C47A",
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
);

/// Create operations whose answer names the new resource: (operation, id element).
const CREATES: [(&str, &str); 7] = [
    ("CreateVpc", "vpcId"),
    ("CreateSubnet", "subnetId"),
    ("CreateInternetGateway", "internetGatewayId"),
    ("CreateRouteTable", "routeTableId"),
    ("AllocateAddress", "allocationId"),
    ("CreateSecurityGroup", "groupId"),
    ("CreateNatGateway", "natGatewayId"),
];

/// Describe operations: (operation, the set element, its items' id element).
const DESCRIBES: [(&str, &str, &str); 7] = [
    ("DescribeVpcs", "vpcSet", "vpcId"),
    ("DescribeSubnets", "subnetSet", "subnetId"),
    (
        "DescribeInternetGateways",
        "internetGatewaySet",
        "internetGatewayId",
    ),
    ("DescribeRouteTables", "routeTableSet", "routeTableId"),
    ("DescribeAddresses", "addressesSet", "allocationId"),
    ("DescribeSecurityGroups", "securityGroupInfo", "groupId"),
    ("DescribeNatGateways", "natGatewaySet", "natGatewayId"),
];

/// Operations whose `ClientToken` EC2 honours (and the code uses).
const IDEMPOTENT: [&str; 2] = ["CreateNatGateway", "CreateRouteTable"];

/// (region, operation, client token).
type TokenKey = (String, String, String);
/// A request's form parameters.
type Params = Vec<(String, String)>;

/// The EC2 state the strict rules keep: limits, new ids, client tokens.
pub struct Ec2Rules {
    /// VPCs per region (AWS's default: 5).
    pub vpcs: usize,
    /// Elastic IPs per region (AWS's default: 5).
    pub addresses: usize,
    /// NAT gateways per zone, as Service Quotas reports it (not enforced; AWS's default: 5).
    pub nat_gateways_per_zone: usize,
    /// Running On-Demand Standard vCPUs, as Service Quotas reports it (not enforced).
    pub vcpus: usize,
    /// How long a new resource stays invisible (`None`: at once, as moto).
    pub consistency: Option<Duration>,
    /// (region, id) → when its create was answered.
    created: HashMap<(String, String), Instant>,
    /// (region, operation, token) → the request's other parameters and the answer.
    tokens: HashMap<TokenKey, (Params, Bytes)>,
}

impl Default for Ec2Rules {
    fn default() -> Self {
        Self {
            vpcs: 5,
            addresses: 5,
            nat_gateways_per_zone: 5,
            vcpus: 32,
            consistency: None,
            created: HashMap::new(),
            tokens: HashMap::new(),
        }
    }
}

/// A quota to check before forwarding a create: what to ask moto, and what to answer past it.
#[derive(Debug, Clone, Copy)]
pub struct QuotaCheck {
    /// The describe that lists what counts (`DescribeVpcs`).
    pub describe: &'static str,
    /// Its set element.
    set: &'static str,
    /// The limit.
    pub limit: usize,
    code: &'static str,
    message: &'static str,
}

impl QuotaCheck {
    /// How many items the describe's `answer` lists.
    pub fn count(&self, answer: &[u8]) -> usize {
        let text = String::from_utf8_lossy(answer);
        let nodes = scan_xml(&text);
        let Some(set) = nodes.iter().position(|node| node.name == self.set) else {
            return 0;
        };
        nodes
            .iter()
            .filter(|node| node.parent == Some(set) && node.name == "item")
            .count()
    }

    /// AWS's answer to a create past the quota.
    pub fn refused(&self, request_id: &str) -> Response<Full<Bytes>> {
        ec2_error(self.code, self.message, request_id)
    }
}

/// One request, as the EC2 rules see it.
pub struct Request<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub operation: &'a str,
    pub form: &'a [(String, String)],
    pub body: &'a [u8],
    pub request_id: &'a str,
}

impl Ec2Rules {
    /// The quota `request` is subject to, if any.
    pub fn quota(&self, request: &Request<'_>) -> Option<QuotaCheck> {
        if request.service != "ec2" {
            return None;
        }
        match request.operation {
            "CreateVpc" => Some(QuotaCheck {
                describe: "DescribeVpcs",
                set: "vpcSet",
                limit: self.vpcs,
                code: "VpcLimitExceeded",
                message: "The maximum number of VPCs has been reached.",
            }),
            "AllocateAddress" => Some(QuotaCheck {
                describe: "DescribeAddresses",
                set: "addressesSet",
                limit: self.addresses,
                code: "AddressLimitExceeded",
                message: "The maximum number of addresses has been reached.",
            }),
            _ => None,
        }
    }

    /// AWS's answer to `request` decided before moto sees it: a Service Quotas answer, an
    /// id too new to be known, or a client token's first answer.
    pub fn answer(&self, request: &Request<'_>, now: Instant) -> Option<Response<Full<Bytes>>> {
        if request.service == "servicequotas" && request.operation == "GetServiceQuota" {
            return Some(self.service_quota(request.body));
        }
        if request.service != "ec2" {
            return None;
        }
        if let Some(token) = form_get(request.form, "ClientToken")
            && IDEMPOTENT.contains(&request.operation)
            && let Some((params, body)) = self.tokens.get(&token_key(request, token))
        {
            if *params != token_params(request.form) {
                return Some(ec2_error(
                    "IdempotentParameterMismatch",
                    "The client token you have provided is associated with a resource that is already deleted or was created with different parameters.",
                    request.request_id,
                ));
            }
            let mut response = Response::new(Full::new(body.clone()));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/xml"),
            );
            return Some(response);
        }
        let window = self.consistency?;
        let named = request
            .form
            .iter()
            .filter(|(key, _)| !key.starts_with("Filter.") && !key.starts_with("TagSpecification"))
            .map(|(_, value)| value.as_str())
            .find(|value| self.young(request.region, value, now, window))?;
        let (code, message) = not_found(request.operation, named);
        Some(ec2_error(code, &message, request.request_id))
    }

    /// After moto answered `request` with `answer` (a success): remember what it created
    /// and the client token, and hide what is too new from a tag-filtered describe (the
    /// answer rewritten, if it changed).
    pub fn after(&mut self, request: &Request<'_>, answer: &Bytes, now: Instant) -> Option<Bytes> {
        if request.service != "ec2" {
            return None;
        }
        if let Some((_, element)) = CREATES.iter().find(|(op, _)| *op == request.operation) {
            let text = String::from_utf8_lossy(answer);
            let nodes = scan_xml(&text);
            if let Some(node) = nodes.iter().find(|node| node.name == *element) {
                let id = text[node.inner_start..node.inner_end].to_string();
                self.created.insert((request.region.to_string(), id), now);
            }
        }
        if let Some(token) = form_get(request.form, "ClientToken")
            && IDEMPOTENT.contains(&request.operation)
        {
            let key = token_key(request, token);
            let value = (token_params(request.form), answer.clone());
            self.tokens.entry(key).or_insert(value);
        }
        let window = self.consistency?;
        let tag_filtered = request.form.iter().any(|(key, value)| {
            key.starts_with("Filter.")
                && key.ends_with(".Name")
                && (value.starts_with("tag:") || value == "tag-key")
        });
        let (_, set, id) = DESCRIBES.iter().find(|(op, ..)| *op == request.operation)?;
        if !tag_filtered {
            return None;
        }
        let text = String::from_utf8_lossy(answer);
        let nodes = scan_xml(&text);
        let set = nodes.iter().position(|node| node.name == *set)?;
        let edits: Vec<(usize, usize, String)> = nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.parent == Some(set) && node.name == "item")
            .filter(|(index, _)| {
                child(&nodes, *index, id).is_some_and(|id| {
                    self.young(
                        request.region,
                        &text[id.inner_start..id.inner_end],
                        now,
                        window,
                    )
                })
            })
            .map(|(_, item)| (item.open_start, item.close_end, String::new()))
            .collect();
        if edits.is_empty() {
            return None;
        }
        Some(Bytes::from(apply_edits(&text, edits)))
    }

    fn young(&self, region: &str, id: &str, now: Instant, window: Duration) -> bool {
        self.created
            .get(&(region.to_string(), id.to_string()))
            .is_some_and(|created| now.duration_since(*created) < window)
    }

    /// `GetServiceQuota` for the quotas above, as Service Quotas answers it.
    fn service_quota(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let asked = (
            request["ServiceCode"].as_str().unwrap_or_default(),
            request["QuotaCode"].as_str().unwrap_or_default(),
        );
        let known = [
            (VPC_QUOTA, self.vpcs),
            (ADDRESS_QUOTA, self.addresses),
            (NAT_QUOTA, self.nat_gateways_per_zone),
            (VCPU_QUOTA, self.vcpus),
        ];
        let Some((quota, value)) = known
            .into_iter()
            .find(|((service, code, _), _)| asked == (*service, *code))
        else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "NoSuchResourceException",
                "The request failed because the specified resource does not exist.",
            );
        };
        let (service, code, name) = quota;
        json_response(
            StatusCode::OK,
            &serde_json::json!({"Quota": {
                "ServiceCode": service,
                "QuotaCode": code,
                "QuotaName": name,
                "QuotaArn": format!("arn:aws:servicequotas:::{service}/{code}"),
                "Value": value as f64,
                "Unit": "None",
                "Adjustable": true,
                "GlobalQuota": false,
            }}),
        )
    }
}

fn token_key(request: &Request<'_>, token: &str) -> TokenKey {
    (
        request.region.to_string(),
        request.operation.to_string(),
        token.to_string(),
    )
}

/// A request's parameters but the token (and `Action`/`Version`), sorted.
fn token_params(form: &[(String, String)]) -> Params {
    let mut params: Vec<(String, String)> = form
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "ClientToken" | "Action" | "Version"))
        .cloned()
        .collect();
    params.sort();
    params
}

/// The error EC2 answers for an id it does not know (yet): code and message.
fn not_found(operation: &str, id: &str) -> (&'static str, String) {
    let (prefix, _) = id.split_once('-').unwrap_or((id, ""));
    match prefix {
        "vpc" => (
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{id}' does not exist"),
        ),
        "subnet" => (
            "InvalidSubnetID.NotFound",
            format!("The subnet ID '{id}' does not exist"),
        ),
        "igw" => (
            "InvalidInternetGatewayID.NotFound",
            format!("The internetGateway ID '{id}' does not exist"),
        ),
        "rtb" => (
            "InvalidRouteTableID.NotFound",
            format!("The routeTable ID '{id}' does not exist"),
        ),
        "eipalloc" => (
            "InvalidAllocationID.NotFound",
            format!("The allocation ID '{id}' does not exist"),
        ),
        "sg" => (
            "InvalidGroup.NotFound",
            format!("The security group '{id}' does not exist"),
        ),
        "nat" if operation == "DescribeNatGateways" => (
            "NatGatewayNotFound",
            format!("The Nat Gateway {id} was not found"),
        ),
        _ => (
            "InvalidNatGatewayID.NotFound",
            format!("The natGateway ID '{id}' does not exist"),
        ),
    }
}
