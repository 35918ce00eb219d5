"""Seed a moto server with a "production" in ap-southeast-2 for the drill: a Postgres
instance `prod-db`, three snapshots of different ages, the two older ones copied to
ap-southeast-1 (as AWS Backup or a copy job would). Uses boto3 from moto's venv."""
import sys
import time

import boto3

endpoint = sys.argv[1]
auth = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
iam = boto3.client("iam", region_name="us-east-1", **auth)
trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
for role in ("shop-eks-cluster", "shop-eks-nodes"):
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
source = boto3.client("rds", region_name="ap-southeast-2", **auth)
target = boto3.client("rds", region_name="ap-southeast-1", **auth)

source.create_db_instance(
    DBInstanceIdentifier="prod-db", Engine="postgres", DBInstanceClass="db.r6g.large",
    AllocatedStorage=100, MasterUsername="app", MasterUserPassword="not-a-real-password",
)
for index in (1, 2, 3):
    source.create_db_snapshot(DBSnapshotIdentifier=f"prod-db-snap-{index}", DBInstanceIdentifier="prod-db")
    time.sleep(1.1)
for index in (1, 2):
    target.copy_db_snapshot(
        SourceDBSnapshotIdentifier=f"arn:aws:rds:ap-southeast-2:123456789012:snapshot:prod-db-snap-{index}",
        TargetDBSnapshotIdentifier=f"prod-db-snap-{index}-copy",
        SourceRegion="ap-southeast-2",
    )
print("seeded: IAM roles shop-eks-cluster and shop-eks-nodes; prod-db in ap-southeast-2 with 3 snapshots; snap-1 and snap-2 copied to ap-southeast-1")
