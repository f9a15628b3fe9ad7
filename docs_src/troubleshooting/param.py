from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(Scope.REPLICA)
class Client:
    def __init__(self, timeout) -> None:
        self.timeout = timeout


app = Flow()
service = app.service()


@service.endpoint("/ping", method="GET")
def ping(client: Client) -> str:
    return "pong"
