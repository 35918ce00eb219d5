//! RDS as strict as AWS, where moto is lenient or silent.
//!
//! - **Orderable options.** `DescribeOrderableDBInstanceOptions` (moto answers nothing for
//!   `postgres`) and `DescribeDBEngineVersions` (moto lacks it) answer from one table,
//!   [`ORDERABLE`] (engine, engine version, instance class, `MultiAZCapable`), shaped like
//!   what RDS offers in ap-southeast-1 in December 2026: current PostgreSQL 16 and 17 minors
//!   only (moto's default `postgres` 9.3.3 is long past end of life and absent). A test may
//!   replace the table (`Proxy::set_rds_orderable`).
//! - **Restores.** `RestoreDBInstanceFromDBSnapshot` from a snapshot whose engine version
//!   × instance class (× Multi-AZ) is not in the table is refused with
//!   `InvalidParameterCombination` (HTTP 400), as RDS refuses it ("RDS does not support
//!   creating a DB instance with the following combination: …"); a version missing from
//!   `DescribeDBEngineVersions` with "Cannot find version … for postgres".
//! - **Parameter groups.** `DescribeDBParameterGroups` naming a group that does not exist
//!   answers `DBParameterGroupNotFound` (HTTP 404) where moto answers an empty list; the
//!   engines' `default.*` groups exist, as on AWS. (Moto already refuses an unknown option
//!   group with `OptionGroupNotFoundFault`, and both on the restore itself.)
//! - **Snapshots moto does not model** (review B7): AWS Backup snapshots
//!   (`SnapshotType=awsbackup`) and manual snapshots shared by another account
//!   (`SnapshotType=shared`, or added to the automated and manual ones by
//!   `IncludeShared=true`), as [`CannedSnapshot`]s a test adds, filtered by
//!   `DBInstanceIdentifier` and the `db-instance-id` filter. Restoring one (by its ARN, the
//!   only way AWS accepts a shared snapshot) restores the moto snapshot it stands for.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::super::holds::form_get;
use super::{query_error, xml_response};

/// What RDS offers: (engine, engine version, instance class, `MultiAZCapable`).
pub const ORDERABLE: &[(&str, &str, &str, bool)] = &[
    ("postgres", "16.8", "db.t3.medium", true),
    ("postgres", "16.8", "db.t4g.medium", true),
    ("postgres", "16.8", "db.m6g.large", true),
    ("postgres", "16.8", "db.m7g.large", true),
    ("postgres", "16.8", "db.r6g.large", true),
    ("postgres", "16.8", "db.r7g.large", true),
    ("postgres", "16.9", "db.t4g.medium", true),
    ("postgres", "16.9", "db.m7g.large", true),
    ("postgres", "16.9", "db.r6g.large", true),
    ("postgres", "16.9", "db.r7g.large", true),
    ("postgres", "17.5", "db.t4g.medium", true),
    ("postgres", "17.5", "db.m7g.large", true),
    ("postgres", "17.5", "db.r7g.large", true),
    ("aurora-postgresql", "16.8", "db.t4g.medium", true),
    ("aurora-postgresql", "16.8", "db.r6g.large", true),
    ("aurora-postgresql", "16.8", "db.r7g.large", true),
];

/// The engine version production runs (the seed's), one RDS still restores.
pub const CURRENT_POSTGRES: &str = "16.8";

/// One row of the orderable table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orderable {
    /// `postgres`, `aurora-postgresql`.
    pub engine: String,
    /// e.g. `16.8`.
    pub version: String,
    /// e.g. `db.r6g.large`.
    pub class: String,
    /// `MultiAZCapable`.
    pub multi_az: bool,
}

impl Orderable {
    /// The default table, [`ORDERABLE`].
    pub fn table() -> Vec<Self> {
        ORDERABLE
            .iter()
            .map(|(engine, version, class, multi_az)| Self {
                engine: (*engine).to_string(),
                version: (*version).to_string(),
                class: (*class).to_string(),
                multi_az: *multi_az,
            })
            .collect()
    }
}

/// What kind of snapshot moto cannot show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CannedKind {
    /// Made by AWS Backup (`SnapshotType=awsbackup`), in this account.
    AwsBackup,
    /// A manual snapshot another account shared with this one (`SnapshotType=shared`).
    Shared {
        /// The owner's account id.
        owner: String,
    },
}

/// A snapshot the proxy shows in `DescribeDBSnapshots` answers in AWS's shape.
#[derive(Debug, Clone)]
pub struct CannedSnapshot {
    /// AWS Backup's or another account's.
    pub kind: CannedKind,
    /// The region it is in.
    pub region: String,
    /// The DB instance it was taken of.
    pub instance: String,
    /// Its name: `awsbackup:job-…` for AWS Backup.
    pub name: String,
    /// `SnapshotCreateTime` (and `OriginalSnapshotCreateTime`).
    pub taken: jiff::Timestamp,
    /// Its engine version.
    pub engine_version: String,
    /// The moto snapshot (in the same region) a restore from it actually restores.
    pub stands_for: String,
    /// The KMS key it is encrypted with (`None`: not encrypted).
    pub kms_key_id: Option<String>,
}

/// This account, as moto names it.
const ACCOUNT: &str = "123456789012";

impl CannedSnapshot {
    /// The account that owns it.
    pub fn owner(&self) -> &str {
        match &self.kind {
            CannedKind::AwsBackup => ACCOUNT,
            CannedKind::Shared { owner } => owner,
        }
    }

    /// Its ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:rds:{}:{}:snapshot:{}",
            self.region,
            self.owner(),
            self.name
        )
    }

    /// `DBSnapshotIdentifier` as AWS shows it: the ARN for a shared snapshot.
    pub fn identifier(&self) -> String {
        match self.kind {
            CannedKind::AwsBackup => self.name.clone(),
            CannedKind::Shared { .. } => self.arn(),
        }
    }

    /// `SnapshotType`.
    pub fn snapshot_type(&self) -> &'static str {
        match self.kind {
            CannedKind::AwsBackup => "awsbackup",
            CannedKind::Shared { .. } => "shared",
        }
    }

    /// Whether `reference` (a restore's `DBSnapshotIdentifier`) names it.
    fn named_by(&self, reference: &str) -> bool {
        match self.kind {
            CannedKind::AwsBackup => reference == self.name || reference == self.arn(),
            // AWS accepts only the ARN for a shared snapshot.
            CannedKind::Shared { .. } => reference == self.arn(),
        }
    }

    fn xml(&self) -> String {
        let taken = self.taken.strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        format!(
            "<DBSnapshot><DBSnapshotIdentifier>{id}</DBSnapshotIdentifier>\
             <DBInstanceIdentifier>{instance}</DBInstanceIdentifier>\
             <SnapshotCreateTime>{taken}</SnapshotCreateTime>\
             <OriginalSnapshotCreateTime>{taken}</OriginalSnapshotCreateTime>\
             <Engine>postgres</Engine><EngineVersion>{version}</EngineVersion>\
             <AllocatedStorage>20</AllocatedStorage><Status>available</Status><Port>5432</Port>\
             <MasterUsername>app</MasterUsername><LicenseModel>postgresql-license</LicenseModel>\
             <SnapshotType>{kind}</SnapshotType><PercentProgress>100</PercentProgress>\
             <StorageType>gp3</StorageType>{encryption}\
             <DBSnapshotArn>{arn}</DBSnapshotArn><DbiResourceId>db-CANNED{owner}</DbiResourceId>\
             <TagList/></DBSnapshot>",
            id = self.identifier(),
            instance = self.instance,
            version = self.engine_version,
            kind = self.snapshot_type(),
            arn = self.arn(),
            owner = self.owner(),
            encryption = match &self.kms_key_id {
                Some(key) => format!("<Encrypted>true</Encrypted><KmsKeyId>{key}</KmsKeyId>"),
                None => "<Encrypted>false</Encrypted>".to_string(),
            },
        )
    }
}

/// The RDS rules' settings, kept by the proxy.
#[derive(Debug, Default)]
pub struct RdsRules {
    /// Snapshots moto cannot show.
    pub canned: Vec<CannedSnapshot>,
    /// The orderable table, when a test replaced [`ORDERABLE`].
    pub orderable: Option<Vec<Orderable>>,
}

impl RdsRules {
    fn orderable(&self) -> Vec<Orderable> {
        self.orderable.clone().unwrap_or_else(Orderable::table)
    }

    /// The canned snapshot a restore's `DBSnapshotIdentifier` names, if any.
    pub(in super::super) fn canned(
        &self,
        region: &str,
        reference: &str,
    ) -> Option<&CannedSnapshot> {
        self.canned
            .iter()
            .find(|snapshot| snapshot.region == region && snapshot.named_by(reference))
    }

    /// The canned snapshots a `DescribeDBSnapshots` of `kinds` in `region` lists.
    fn listed(&self, region: &str, form: &[(String, String)], kinds: &[&str]) -> String {
        let instances = instance_filter(form);
        self.canned
            .iter()
            .filter(|snapshot| snapshot.region == region)
            .filter(|snapshot| kinds.contains(&snapshot.snapshot_type()))
            .filter(|snapshot| {
                instances.is_empty()
                    || instances
                        .iter()
                        .any(|instance| instance.eq_ignore_ascii_case(&snapshot.instance))
            })
            .map(CannedSnapshot::xml)
            .collect()
    }

    /// Whether RDS restores `engine` `version` at all.
    fn restorable(&self, engine: &str, version: &str) -> bool {
        self.orderable()
            .iter()
            .any(|row| row.engine == engine && row.version == version)
    }

    /// AWS's refusal of a restore of an `engine` `version` snapshot into `class`, if it
    /// refuses.
    pub(in super::super) fn refuse_restore(
        &self,
        engine: &str,
        version: &str,
        class: Option<&str>,
        multi_az: bool,
    ) -> Option<Response<Full<Bytes>>> {
        if !self.restorable(engine, version) {
            return Some(query_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterCombination",
                &format!("Cannot find version {version} for {engine}"),
            ));
        }
        let class = class?;
        let offered = self.orderable().iter().any(|row| {
            row.engine == engine
                && row.version == version
                && row.class == class
                && (row.multi_az || !multi_az)
        });
        (!offered).then(|| {
            query_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterCombination",
                &format!(
                    "RDS does not support creating a DB instance with the following combination: \
                     DBInstanceClass={class}, Engine={engine}, EngineVersion={version}, \
                     LicenseModel=postgresql-license. For supported combinations of instance \
                     class and database engine version, see the documentation."
                ),
            )
        })
    }
}

/// AWS's answer to an RDS request the strict rules decide before moto sees it, if they
/// decide it.
pub(super) fn answer(
    rules: &RdsRules,
    operation: &str,
    region: &str,
    form: &[(String, String)],
) -> Option<Response<Full<Bytes>>> {
    match operation {
        "DescribeOrderableDBInstanceOptions" => Some(orderable_options(rules, form)),
        "DescribeDBEngineVersions" => Some(engine_versions(rules, form)),
        "DescribeDBSnapshots" => {
            let kind = form_get(form, "SnapshotType")?;
            let kinds: &[&str] = match kind {
                "awsbackup" => &["awsbackup"],
                "shared" => &["shared"],
                _ => return None,
            };
            let listed = rules.listed(region, form, kinds);
            Some(xml_response(&format!(
                "<DescribeDBSnapshotsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
                 <DescribeDBSnapshotsResult><DBSnapshots>{listed}</DBSnapshots></DescribeDBSnapshotsResult>\
                 <ResponseMetadata><RequestId>strict-rds</RequestId></ResponseMetadata>\
                 </DescribeDBSnapshotsResponse>"
            )))
        }
        _ => None,
    }
}

/// Moto's successful answer rewritten as AWS would answer, if the rules rewrite it.
pub(super) fn rewrite(
    rules: &RdsRules,
    operation: &str,
    region: &str,
    form: &[(String, String)],
    body: &[u8],
) -> Option<Response<Full<Bytes>>> {
    let text = String::from_utf8_lossy(body);
    match operation {
        "DescribeDBSnapshots" if form_get(form, "IncludeShared") == Some("true") => {
            let shared = rules.listed(region, form, &["shared"]);
            if let Some(at) = text.find("</DBSnapshots>") {
                let mut answer = text.into_owned();
                answer.insert_str(at, &shared);
                return Some(xml_response(&answer));
            }
            // Moto writes an empty list as `<DBSnapshots/>`.
            text.contains("<DBSnapshots/>").then(|| {
                xml_response(&text.replace(
                    "<DBSnapshots/>",
                    &format!("<DBSnapshots>{shared}</DBSnapshots>"),
                ))
            })
        }
        "DescribeDBParameterGroups" => {
            let name = form_get(form, "DBParameterGroupName")?;
            if text.contains("<DBParameterGroupName>") {
                return None;
            }
            if let Some(family) = name.strip_prefix("default.") {
                return Some(xml_response(&format!(
                    "<DescribeDBParameterGroupsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
                     <DescribeDBParameterGroupsResult><DBParameterGroups><DBParameterGroup>\
                     <DBParameterGroupName>{name}</DBParameterGroupName>\
                     <DBParameterGroupFamily>{family}</DBParameterGroupFamily>\
                     <Description>Default parameter group for {family}</Description>\
                     </DBParameterGroup></DBParameterGroups></DescribeDBParameterGroupsResult>\
                     <ResponseMetadata><RequestId>strict-rds</RequestId></ResponseMetadata>\
                     </DescribeDBParameterGroupsResponse>"
                )));
            }
            Some(query_error(
                StatusCode::NOT_FOUND,
                "DBParameterGroupNotFound",
                &format!("DBParameterGroup not found: {name}"),
            ))
        }
        _ => None,
    }
}

/// The values of the `db-instance-id` filter and `DBInstanceIdentifier`.
fn instance_filter(form: &[(String, String)]) -> Vec<String> {
    let mut instances: Vec<String> = form_get(form, "DBInstanceIdentifier")
        .map(str::to_string)
        .into_iter()
        .collect();
    for (key, value) in form {
        let Some(rest) = key.strip_prefix("Filters.Filter.") else {
            continue;
        };
        let Some(number) = rest.strip_suffix(".Name") else {
            continue;
        };
        if value != "db-instance-id" {
            continue;
        }
        let prefix = format!("Filters.Filter.{number}.Values.");
        instances.extend(
            form.iter()
                .filter(|(key, _)| key.starts_with(&prefix))
                .map(|(_, value)| value.rsplit(':').next().unwrap_or(value).to_string()),
        );
    }
    instances
}

fn orderable_options(rules: &RdsRules, form: &[(String, String)]) -> Response<Full<Bytes>> {
    let engine = form_get(form, "Engine");
    let version = form_get(form, "EngineVersion");
    let class = form_get(form, "DBInstanceClass");
    let rows: String = rules
        .orderable()
        .iter()
        .filter(|row| engine.is_none_or(|engine| row.engine == engine))
        .filter(|row| version.is_none_or(|version| row.version == version))
        .filter(|row| class.is_none_or(|class| row.class == class))
        .map(|row| {
            format!(
                "<OrderableDBInstanceOption><Engine>{}</Engine><EngineVersion>{}</EngineVersion>\
                 <DBInstanceClass>{}</DBInstanceClass><LicenseModel>postgresql-license</LicenseModel>\
                 <MultiAZCapable>{}</MultiAZCapable><Vpc>true</Vpc><StorageType>gp3</StorageType>\
                 </OrderableDBInstanceOption>",
                row.engine, row.version, row.class, row.multi_az
            )
        })
        .collect();
    xml_response(&format!(
        "<DescribeOrderableDBInstanceOptionsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
         <DescribeOrderableDBInstanceOptionsResult><OrderableDBInstanceOptions>{rows}\
         </OrderableDBInstanceOptions></DescribeOrderableDBInstanceOptionsResult>\
         <ResponseMetadata><RequestId>strict-rds</RequestId></ResponseMetadata>\
         </DescribeOrderableDBInstanceOptionsResponse>"
    ))
}

fn engine_versions(rules: &RdsRules, form: &[(String, String)]) -> Response<Full<Bytes>> {
    let engine = form_get(form, "Engine");
    let version = form_get(form, "EngineVersion");
    let mut seen: Vec<(String, String)> = Vec::new();
    for row in rules.orderable() {
        let pair = (row.engine.clone(), row.version.clone());
        if engine.is_none_or(|engine| row.engine == engine)
            && version.is_none_or(|version| row.version == version)
            && !seen.contains(&pair)
        {
            seen.push(pair);
        }
    }
    let versions: String = seen
        .iter()
        .map(|(engine, version)| {
            let major = version.split('.').next().unwrap_or(version);
            let family = format!("{engine}{major}");
            format!(
                "<DBEngineVersion><Engine>{engine}</Engine><EngineVersion>{version}</EngineVersion>\
                 <DBParameterGroupFamily>{family}</DBParameterGroupFamily>\
                 <Status>available</Status></DBEngineVersion>"
            )
        })
        .collect();
    xml_response(&format!(
        "<DescribeDBEngineVersionsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
         <DescribeDBEngineVersionsResult><DBEngineVersions>{versions}</DBEngineVersions>\
         </DescribeDBEngineVersionsResult>\
         <ResponseMetadata><RequestId>strict-rds</RequestId></ResponseMetadata>\
         </DescribeDBEngineVersionsResponse>"
    ))
}
