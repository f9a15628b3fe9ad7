from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.requests import Request


@dependency(scope=Scope.REPLICA)
class Greetings:
    """Built once per worker process: the place for a client, a pool or a loaded model."""

    def __init__(self) -> None:
        self.templates = {"en": "Hello, {}!", "fr": "Bonjour, {} !"}


@dependency(scope=Scope.PROCESS)
class Language:
    """Built for each request, from the request itself."""

    def __init__(self, request: Request) -> None:
        self.code = request.headers.get("Accept-Language", "en")[:2]


app = Flow()
service = app.service()


@service.endpoint("/greet/{name}", method="GET")
def greet(name: str, greetings: Greetings, language: Language) -> str:
    template = greetings.templates.get(language.code, greetings.templates["en"])
    return template.format(name)
