"""The service account's Cloud SQL user, for a flow whose sessions log in with ``enable_iam_auth``.

Cloud SQL lets an IAM principal log in with an OAuth token when three things hold: the
instance's ``cloudsql.iam_authentication`` flag is on (the program sets it), the principal is a
user of the instance of type ``CLOUD_IAM_SERVICE_ACCOUNT`` (made here), and it has
``roles/cloudsql.instanceUser`` (a grant of the deployment). A PostgreSQL IAM user starts with
no privileges at all, so it is made a member of the roles of the flow's password users of the
instance, who own what their migrations and ``create_all`` made, and of ``cloudsqlsuperuser``,
as every built-in user Cloud SQL makes is (so it may create tables of its own).

Imported only when the gcp target runs: it imports pulumi and pulumi_gcp.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp

from bfctl.providers.gcp.deploy import Deployment
from bfctl.providers.gcp.existing import made_or_named
from buildflow.dependencies.sqlalchemy import session_users
from buildflow.io.gcp import CloudSQLInstance, CloudSQLUser

#: The role Cloud SQL gives every built-in PostgreSQL user it makes.
BUILT_IN_ROLE = "cloudsqlsuperuser"
#: PostgreSQL refuses to drop a role that owns tables or was granted roles: like the flow's own
#: users, the account's user is left to go with its instance.
_DELETION = "ABANDON"


def declare(
    deployment: Deployment, made: Mapping[str, pulumi.CustomResource], account: pulumi.Resource
) -> list[pulumi.Resource]:
    """One user per instance the flow logs in to as the account, made once the account, the
    instance (with its flag) and the flow's password users of it (whose roles it gets) are."""
    instances: dict[str, CloudSQLInstance] = {}
    password_users: dict[str, list[CloudSQLUser]] = {}
    for database in deployment.iam_databases:
        instance = database.instance
        instances[instance.primitive_id()] = instance
        users = password_users.setdefault(instance.primitive_id(), [])
        for name, password in session_users(database):
            user = CloudSQLUser(user_name=name, password=password, instance=instance)
            if all(u.primitive_id() != user.primitive_id() for u in users):
                users.append(user)
    out: list[pulumi.Resource] = []
    for instance_id, instance in instances.items():
        users = password_users[instance_id]
        after = [made[p] for p in (instance_id, *(u.primitive_id() for u in users)) if p in made]
        out.append(
            gcp.sql.User(
                f"{instance_id}/users/{deployment.iam_user}",
                name=deployment.iam_user,
                instance=made_or_named(made, instance, "name", instance.instance_name),
                project=instance.project_id,
                type="CLOUD_IAM_SERVICE_ACCOUNT",
                database_roles=[*(u.user_name for u in users), BUILT_IN_ROLE],
                deletion_policy=_DELETION,
                opts=pulumi.ResourceOptions(depends_on=[account, *after]),
            )
        )
    return out
