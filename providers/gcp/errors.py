"""Errors of the gcp target; each message says what to do (the CLI prints it, no traceback)."""

from __future__ import annotations

from bfctl.providers.errors import ProviderError

INSTALL_EXTRA = "pip install 'bfctl[gcp]'"


class GCPTargetError(ProviderError):
    """The gcp target cannot go on; the message says why."""


class GCPExtraMissingError(GCPTargetError):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"The gcp target needs Pulumi, pulumi-gcp and the Cloud SQL connector, which are not installed "
            f"(missing: {', '.join(missing)}). They are an optional extra, kept out of the core install "
            f"because pulumi-gcp alone is about 290 MB: run `{INSTALL_EXTRA}` (or `make install` in a "
            "checkout) and try again."
        )


class PulumiNotInstalledError(GCPTargetError):
    def __init__(self) -> None:
        super().__init__(
            "The gcp target runs Pulumi, and the Pulumi CLI (the `pulumi` program) is not on PATH. "
            "It is a separate program from the Python packages: install it with "
            "`curl -fsSL https://get.pulumi.com | sh` (Linux and macOS) or `brew install pulumi/tap/pulumi`, "
            "or see https://www.pulumi.com/docs/iac/download-install/; then open a new shell (the installer "
            "adds ~/.pulumi/bin to PATH) and run this command again. Nothing was changed."
        )


class PassphraseRequiredError(GCPTargetError):
    def __init__(self) -> None:
        super().__init__(
            "Pulumi encrypts the stack's secrets (database passwords) with a passphrase, and none was given. "
            "Set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) in the environment, e.g. from your "
            "CI's secret store, or run the command in a terminal to be asked for it. Use the same passphrase "
            "every time for a stack."
        )


class GCPSettingsError(GCPTargetError):
    """The project or region of the stack is missing or ambiguous."""


class PulumiOperationError(GCPTargetError):
    """``pulumi preview``, ``up`` or ``destroy`` failed; the message carries Pulumi's own errors."""


#: Google's answer when an organization policy keeps a member out of IAM policies.
_NOT_PERMITTED = "do not belong to a permitted customer"


def policy_refusals(details: str) -> str:
    """What Pulumi's errors mean when an organization policy refused a grant, and what to do;
    empty when none did. Google's own words name neither the policy nor ``--public``."""
    if _NOT_PERMITTED not in details:
        return ""
    return (
        "\nThe organization's domain-restricted sharing policy (constraints/iam.allowedPolicyMemberDomains, "
        "enforced by default in organizations made since May 2024) refused a member from outside it: with "
        "--public (or public = true) that is allUsers, the Cloud Run invoker for everyone. Apply again without "
        "--public and let callers in another way: grant roles/run.invoker to a Google group of your domain "
        "(`gcloud run services add-iam-policy-binding SERVICE --member=group:GROUP --role=roles/run.invoker`); "
        "put Identity-Aware Proxy in front for sign-in with Google accounts; serve it through an external "
        "Application load balancer; or, to stay open to everyone, turn off the invoker check instead, which "
        "the policy allows (`gcloud run services update SERVICE --no-invoker-iam-check`, roles/run.admin)."
    )
