import asyncio
import time

from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.PROCESS)
async def profile() -> dict:
    await asyncio.sleep(0.01)  # a call to another service
    return {"name": "Ann"}


@dependency(scope=Scope.PROCESS)
async def orders() -> list:
    await asyncio.sleep(0.03)  # a slower one
    return [17, 42]


@dependency(scope=Scope.PROCESS)
def summary(who: profile, bought: orders) -> str:
    return f"{who['name']} placed {len(bought)} orders"


@dependency(Scope.PROCESS, blocking=True)
def loyalty_tier() -> str:
    time.sleep(0.02)  # a blocking client: marked blocking, it gets a thread of its own
    return "gold"


app = Flow()
service = app.service()


@service.endpoint("/account", method="GET")
def account(text: summary, tier: loyalty_tier) -> dict:
    return {"summary": text, "tier": tier}
