"""One dependency of each scope, chained, and what their identities tell: shared by the tests of
endpoints and of consumers, which must inject them alike."""

from __future__ import annotations

import os
from typing import Any

from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.GLOBAL)
class GlobalDep:
    def __init__(self) -> None:
        self.pid = os.getpid()


@dependency(scope=Scope.NO_SCOPE)
class NoScopeDep:
    pass


@dependency(scope=Scope.REPLICA)
class ReplicaDep:
    built = 0

    def __init__(self, global_: GlobalDep, no: NoScopeDep) -> None:
        ReplicaDep.built += 1
        self.global_ = global_
        self.no = no


@dependency(scope=Scope.PROCESS)
class ProcessDep:
    def __init__(self, replica: ReplicaDep, no: NoScopeDep) -> None:
        self.replica = replica
        self.no = no


def identities(
    process: ProcessDep, process2: ProcessDep, replica: ReplicaDep, global_: GlobalDep, no: NoScopeDep
) -> dict[str, Any]:
    """Whether each scope shared or made anew what it should, and the ids to compare across calls."""
    return {
        "process_shared": process is process2,
        "replica_shared": process.replica is replica,
        "global_shared": replica.global_ is global_,
        "no_scope_fresh": len({id(no), id(process.no), id(replica.no)}) == 3,
        "process": id(process),
        "replica": id(replica),
        "global": id(global_),
    }
