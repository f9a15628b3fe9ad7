"""Values the runtime injects about the environment the flow runs in.

Declared here as GLOBAL dependencies with empty defaults, so a flow can be built and tested
without bfctl; ``bfctl serve`` replaces them with what the provider applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from buildflow.dependencies.scopes import Scope, dependency


class NotApplied(KeyError):
    """No applied infrastructure for a primitive. A ``KeyError``, so ``in`` and ``.get`` of the
    mapping work as for any other; its message says what to run."""

    def __str__(self) -> str:
        return str(self.args[0])


@dependency(Scope.GLOBAL)
class ResourceOutputs(Mapping[str, Mapping[str, Any]]):
    """Outputs of the applied infrastructure (host, port, names...), by primitive id."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]] | None = None, target: str = "local") -> None:
        self._outputs = dict(outputs or {})
        self.target = target

    def __getitem__(self, primitive_id: str) -> Mapping[str, Any]:
        try:
            return self._outputs[primitive_id]
        except KeyError:
            raise NotApplied(
                f"no applied infrastructure for {primitive_id!r} on the {self.target} target: "
                "run `bfctl apply` (or `bfctl serve --apply`)"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


@dependency(Scope.GLOBAL)
class FlowCredentials:
    """Cloud credentials for dependencies (BuildFlow's flow dependency); None means the
    client libraries' defaults (Application Default Credentials on GCP)."""

    def __init__(self, gcp_credentials: Any = None, aws_credentials: Any = None) -> None:
        self.gcp_credentials = gcp_credentials
        self.aws_credentials = aws_credentials
