"""A flow whose REPLICA dependency records its teardown, so tests can check
that a SIGTERM shutdown runs the code after ``yield``."""

import os

from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(Scope.REPLICA)
def marker():
    yield "x"
    with open(os.environ["BF_TEARDOWN_FILE"], "a", encoding="utf-8") as record:
        record.write("teardown\n")


app = Flow()
service = app.service()


@service.endpoint("/bob", method="GET")
def bob(m: marker):
    return f"bob {m}"


@service.endpoint("/sally", method="GET")
def sally():
    return "sally"
