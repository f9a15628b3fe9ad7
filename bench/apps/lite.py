"""The same endpoints on Litestar: dependencies as ``Provide`` (parameters marked
``NamedDependency``), the body as a msgspec ``Struct`` (marked ``JSONBody``).

What matches what (bfctl in ours.py / FastAPI in fast.py / here):

- ``MyStringDependency``, REPLICA scope (one per worker) / one module-level instance returned
  by a ``Depends`` function / one ``Provide(use_cache=True)``: built on first use, then the
  same instance for every request of the worker.  Litestar binds one provider to one name, so
  every handler here calls that parameter ``config`` (fast.py's /bob and /abob say
  ``my_string_dep``).
- ``RequestTag``, PROCESS scope (one per request) / ``Depends()`` on the class / ``Provide`` of
  the class, not cached: a new instance per request.  Its constructor is sync and runs in the
  thread pool in all three (``sync_to_thread=True`` here).
- ``session_token``, PROCESS scope, async / async ``Depends`` / async ``Provide``, not cached:
  awaited once per request on the event loop.  Litestar resolves ``tag`` and ``token``
  concurrently, as bfctl and the aiohttp baseline do.
- ``GET /bob`` is a sync handler: bfctl and FastAPI run it in the thread pool, so here it is
  declared ``sync_to_thread=True``.
- ``Order``, a dataclass / pydantic model / ``msgspec.Struct``: all 8 fields decoded and
  type-checked by the framework before the handler runs.  (An invalid body is answered 422 by
  bfctl and FastAPI, 400 by Litestar; only valid bodies are measured.)
- Answers: the same status and JSON bodies as the other apps.  Litestar writes a returned
  ``str`` as is (``text/plain``), while the others answer a JSON string (``"HELLO! BOB!"``), so
  /bob and /abob encode their string with Litestar's own JSON encoder and answer
  ``application/json``.  ``POST /orders`` answers 200 like the others (Litestar's POST default
  is 201).
"""

import asyncio

import msgspec
from litestar import Litestar, MediaType, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.serialization import encode_json
from litestar.status_codes import HTTP_200_OK


class MyStringDependency:
    def __init__(self) -> None:
        self.my_string = "HELLO!"


def replica() -> MyStringDependency:
    return MyStringDependency()


class RequestTag:
    def __init__(self, config: NamedDependency[MyStringDependency]) -> None:
        self.tag = config.my_string.lower()


async def session_token(config: NamedDependency[MyStringDependency]) -> str:
    await asyncio.sleep(0)
    return config.my_string[:3]


class Order(msgspec.Struct):
    order_id: int
    customer: str
    email: str
    amount: float
    currency: str
    paid: bool
    items: list[str]
    note: str = ""


@get("/bob", media_type=MediaType.JSON, sync_to_thread=True)
def bob(config: NamedDependency[MyStringDependency]) -> bytes:
    return encode_json(config.my_string + " BOB!")


@get("/abob", media_type=MediaType.JSON)
async def abob(config: NamedDependency[MyStringDependency]) -> bytes:
    return encode_json(config.my_string + " BOB!")


@get("/deps")
async def deps(
    config: NamedDependency[MyStringDependency],
    tag: NamedDependency[RequestTag],
    token: NamedDependency[str],
) -> dict:
    return {"s": config.my_string, "tag": tag.tag, "token": token}


@post("/orders", status_code=HTTP_200_OK)
async def orders(data: JSONBody[Order]) -> dict:
    return {"order_id": data.order_id, "items": len(data.items)}


app = Litestar(
    route_handlers=[bob, abob, deps, orders],
    dependencies={
        "config": Provide(replica, use_cache=True, sync_to_thread=False),
        "tag": Provide(RequestTag, sync_to_thread=True),
        "token": Provide(session_token),
    },
)
