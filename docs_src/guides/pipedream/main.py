import asyncio

from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.exceptions import HTTPException
from buildflow.pipedream import Dispatcher


@dependency(Scope.REPLICA)
class Prices:
    def __init__(self) -> None:
        self.by_item = {"tea": 4, "cake": 6}


dispatcher = Dispatcher()


@dispatcher.add
async def profile(user_id):
    """`user_id` is the request's path value."""
    await asyncio.sleep(0.05)  # a slow upstream
    if user_id > 100:
        raise HTTPException(404, f"no user {user_id}")
    return {"id": user_id, "name": f"user {user_id}"}


@dispatcher.add
async def basket(user_id):
    await asyncio.sleep(0.05)  # another one, asked at the same time
    return ["tea", "cake", "tea"]


@dispatcher.add
def total(basket, prices: Prices) -> int:
    """Another result by its name, and a typed dependency by its annotation."""
    return sum(prices.by_item[item] for item in basket)


app = Flow()
app.use_dispatcher(dispatcher)
service = app.service()


@service.endpoint("/users/{user_id}/summary", method="GET")
def summary(user_id: int, profile, basket, total) -> dict:
    return {"profile": profile, "items": len(basket), "total": total}
