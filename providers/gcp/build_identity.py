"""The stack's resources a Cloud Build build of the flow's image runs with: the bucket its source
is uploaded to, the service account it runs as, and that account's three grants, each on only
its resource: read the bucket's objects, write logs, push to the stack's image repository.

New projects run builds as the Compute Engine default account, which has no Cloud Build role,
and organizations made since May 2024 give it no Editor either: it can neither read the source,
nor write logs, nor push. So a build never runs as it. An account the user names
(``build_service_account``) is not made by the stack, which grants it only what it can grant on
its own resources (the bucket, the repository): writing logs in the project is the user's to grant.

Imported only when the gcp target runs: it imports pulumi and pulumi_gcp.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from bfctl.providers.gcp.deploy import Deployment, build_account_id

#: Pulumi names of the resources (the plan shows them under these).
SOURCES_NAME, ACCOUNT_NAME = "build-sources", "build-service-account"
READS_SOURCES, WRITES_LOGS, PUSHES_IMAGES = "build-reads-sources", "build-writes-logs", "build-pushes-images"
#: Days an uploaded source is kept: a deploy runs the image, never its source again.
SOURCES_KEPT_DAYS = 7


def declare(
    deployment: Deployment, repository: gcp.artifactregistry.Repository, apis: Sequence[pulumi.Resource]
) -> gcp.storage.Bucket:
    """Register the build's bucket, account (unless one is named) and grants; the bucket is returned."""
    project = deployment.project
    bucket = gcp.storage.Bucket(
        SOURCES_NAME,
        name=deployment.sources_bucket,
        project=project,
        location=deployment.region,
        # secure-by-default organizations refuse a bucket without uniform access (412); with it the
        # account's grant is on this bucket, never an object ACL
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        force_destroy=True,  # it holds uploaded sources only: the stack's destroy deletes them
        lifecycle_rules=[{"action": {"type": "Delete"}, "condition": {"age": SOURCES_KEPT_DAYS}}],
        opts=pulumi.ResourceOptions(depends_on=list(apis), delete_before_replace=True),
    )
    member: pulumi.Input[str]
    if deployment.build_service_account is None:
        account = gcp.serviceaccount.Account(
            ACCOUNT_NAME,
            account_id=build_account_id(deployment.name),
            display_name=f"{deployment.name} image builds",
            description="The identity Cloud Build runs as for bfctl: it reads the build's source, writes its logs "
            "and pushes the image, nothing else",
            project=project,
            opts=pulumi.ResourceOptions(depends_on=list(apis)),
        )
        member = account.member
        gcp.projects.IAMMember(WRITES_LOGS, project=project, role="roles/logging.logWriter", member=member)
    else:
        member = f"serviceAccount:{deployment.build_service_account}"
    gcp.storage.BucketIAMMember(READS_SOURCES, bucket=bucket.name, role="roles/storage.objectViewer", member=member)
    gcp.artifactregistry.RepositoryIamMember(
        PUSHES_IMAGES,
        project=project,
        location=deployment.region,
        repository=repository.name,
        role="roles/artifactregistry.writer",
        member=member,
    )
    return bucket
