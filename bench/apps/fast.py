"""The same endpoints on FastAPI: dependencies as ``Depends``, the body as a pydantic model."""

import asyncio

from fastapi import Depends, FastAPI
from pydantic import BaseModel


class MyStringDependency:
    def __init__(self) -> None:
        self.my_string = "HELLO!"


DEP = MyStringDependency()


def replica() -> MyStringDependency:
    return DEP


class RequestTag:
    def __init__(self, config: MyStringDependency = Depends(replica)) -> None:
        self.tag = config.my_string.lower()


async def session_token(config: MyStringDependency = Depends(replica)) -> str:
    await asyncio.sleep(0)
    return config.my_string[:3]


class Order(BaseModel):
    order_id: int
    customer: str
    email: str
    amount: float
    currency: str
    paid: bool
    items: list[str]
    note: str = ""


app = FastAPI()


@app.get("/bob")
def bob(my_string_dep: MyStringDependency = Depends(replica)) -> str:
    return my_string_dep.my_string + " BOB!"


@app.get("/abob")
async def abob(my_string_dep: MyStringDependency = Depends(replica)) -> str:
    return my_string_dep.my_string + " BOB!"


@app.get("/deps")
async def deps(
    config: MyStringDependency = Depends(replica),
    tag: RequestTag = Depends(),
    token: str = Depends(session_token),
) -> dict:
    return {"s": config.my_string, "tag": tag.tag, "token": token}


@app.post("/orders")
async def orders(order: Order) -> dict:
    return {"order_id": order.order_id, "items": len(order.items)}
