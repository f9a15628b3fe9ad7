"""The benchmarked endpoints, written for bfctl."""

import asyncio
import dataclasses

from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.REPLICA)
class MyStringDependency:
    def __init__(self) -> None:
        self.my_string = "HELLO!"


@dependency(scope=Scope.PROCESS)
class RequestTag:
    def __init__(self, config: MyStringDependency) -> None:
        self.tag = config.my_string.lower()


@dependency(scope=Scope.PROCESS)
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
    items: list[str]
    note: str = ""


app = Flow()
service = app.service()


@service.endpoint("/bob", method="GET")
def bob(my_string_dep: MyStringDependency) -> str:
    return my_string_dep.my_string + " BOB!"


@service.endpoint("/abob", method="GET")
async def abob(my_string_dep: MyStringDependency) -> str:
    return my_string_dep.my_string + " BOB!"


@service.endpoint("/deps", method="GET")
async def deps(config: MyStringDependency, tag: RequestTag, token: session_token) -> dict:
    return {"s": config.my_string, "tag": tag.tag, "token": token}


@service.endpoint("/orders", method="POST")
async def orders(order: Order) -> dict:
    return {"order_id": order.order_id, "items": len(order.items)}
