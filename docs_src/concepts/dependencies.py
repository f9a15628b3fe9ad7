import logging
from collections.abc import Iterator

from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.GLOBAL)
class Settings:
    def __init__(self) -> None:
        self.greeting = "Hello"


@dependency(scope=Scope.PROCESS)
def audit() -> Iterator[list[str]]:
    """A generator: the code after `yield` is its teardown, run after the handler returns."""
    entries: list[str] = []
    yield entries
    logging.getLogger("audit").info("%s", entries)


app = Flow()
service = app.service()


@service.endpoint("/greet/{name}", method="GET")
def greet(name: str, settings: Settings, entries: audit) -> str:
    entries.append(f"greeted {name}")
    return f"{settings.greeting}, {name}!"
