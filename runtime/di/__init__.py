"""Dependency injection: a flow's dependencies analysed once at start-up, built per scope.

- ``factories``: how one dependency is built and torn down (``Factory``).
- ``graph``: the checked graph of a flow's dependencies (scopes, cycles, missing arguments).
- ``lifecycle``: GLOBAL dependencies built once, REPLICA ones per worker.
- ``resolver`` and ``context``: each handler's PROCESS dependencies as a per-request plan.

What each parameter is (a dependency, the request, a value the client sent) is read by
``bfctl.runtime.parameters``. The handlers and the app use it; nothing here knows about routes or sinks.
"""
