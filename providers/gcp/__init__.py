"""The ``gcp`` target: Google Cloud resources through the Pulumi Automation API (``bfctl[gcp]``)."""

from bfctl.providers.gcp.provider import SUPPORTED, GCPProvider, check_extra

__all__ = ["SUPPORTED", "GCPProvider", "check_extra"]
