"""The same endpoints as hand-written aiohttp handlers: the baseline."""

import asyncio
import dataclasses
import json
import sys

from aiohttp import web


class MyStringDependency:
    def __init__(self) -> None:
        self.my_string = "HELLO!"


class RequestTag:
    def __init__(self, config: MyStringDependency) -> None:
        self.tag = config.my_string.lower()


async def session_token(config: MyStringDependency) -> str:
    await asyncio.sleep(0)
    return config.my_string[:3]


@dataclasses.dataclass
class Order:
    order_id: int
    customer: str
    email: str
    amount: float
    currency: str
    paid: bool
    items: list
    note: str = ""


DEP = MyStringDependency()


def bob_work(dep: MyStringDependency) -> str:
    return dep.my_string + " BOB!"


async def bob(request: web.Request) -> web.Response:
    result = await asyncio.get_running_loop().run_in_executor(None, bob_work, DEP)
    return web.json_response(result)


async def abob(request: web.Request) -> web.Response:
    return web.json_response(DEP.my_string + " BOB!")


async def deps(request: web.Request) -> web.Response:
    loop = asyncio.get_running_loop()
    tag, token = await asyncio.gather(loop.run_in_executor(None, RequestTag, DEP), session_token(DEP))
    return web.json_response({"s": DEP.my_string, "tag": tag.tag, "token": token})


async def orders(request: web.Request) -> web.Response:
    try:
        data = json.loads(await request.read())
        order = Order(**data)
    except (ValueError, TypeError) as e:
        return web.json_response({"detail": str(e)}, status=422)
    return web.json_response({"order_id": order.order_id, "items": len(order.items)})


def main() -> None:
    try:  # the same loop bfctl serve picks, so the comparison is like for like
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app.router.add_get("/bob", bob)
    app.router.add_get("/abob", abob)
    app.router.add_get("/deps", deps)
    app.router.add_post("/orders", orders)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
