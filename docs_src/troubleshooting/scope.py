from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(Scope.PROCESS)
class RequestClock:
    pass


@dependency(Scope.REPLICA)
class Cache:
    def __init__(self, clock: RequestClock) -> None:
        self.clock = clock


app = Flow()
service = app.service()


@service.endpoint("/cache", method="GET")
def cache(cache: Cache) -> str:
    return "ok"
