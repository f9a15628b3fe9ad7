"""The pipedream benchmark: one page needing three independent 10 ms async results, built by a
dispatcher in the handler's plan, against a handler awaiting the same three one after another."""

import asyncio

from buildflow import Flow
from buildflow.pipedream import Dispatcher

#: What each simulated upstream call waits, in seconds.
DELAY = 0.01

dispatcher = Dispatcher()


@dispatcher.add
async def first() -> int:
    await asyncio.sleep(DELAY)
    return 1


@dispatcher.add
async def second() -> int:
    await asyncio.sleep(DELAY)
    return 2


@dispatcher.add
async def third() -> int:
    await asyncio.sleep(DELAY)
    return 3


app = Flow()
service = app.service()
service.use_dispatcher(dispatcher)


@service.endpoint("/together")
async def together(first, second, third) -> int:  # dispatcher results, by name
    return first + second + third


@service.endpoint("/in-turn")
async def in_turn() -> int:
    return await first() + await second() + await third()
