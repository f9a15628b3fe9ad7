"""The test client a flow's own tests import: ``from bfctl.testing import TestClient``.

It serves the flow in-process on a loopback port and speaks real HTTP to it (see
``bfctl.runtime.testing``).
"""

from bfctl.runtime.testing import TestClient, TestResponse

__all__ = ["TestClient", "TestResponse"]
