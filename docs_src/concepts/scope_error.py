from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.PROCESS)
class RequestClock:
    pass


@dependency(scope=Scope.REPLICA)
class Cache:
    def __init__(self, clock: RequestClock) -> None:  # a worker-wide object cannot hold a per-request one
        self.clock = clock


app = Flow()
service = app.service()


@service.endpoint("/cached", method="GET")
def cached(cache: Cache) -> str:
    return "ok"
