"""tests/flows/hello.py on Litestar: ``GET /hello`` answers the JSON string ``"hello"``, run in
the thread pool like the sync handler of the others."""

from litestar import Litestar, MediaType, get
from litestar.serialization import encode_json


@get("/hello", media_type=MediaType.JSON, sync_to_thread=True)
def hello() -> bytes:
    return encode_json("hello")


app = Litestar(route_handlers=[hello])
