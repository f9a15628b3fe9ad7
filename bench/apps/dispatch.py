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


# The diamond, with uneven durations: ``diamond_c`` needs ``diamond_a``; the page needs ``diamond_c``
# and ``diamond_b``. Critical path: max(A + C, B) = 30 ms; stage by stage: max(A, B) + C = 40 ms.
A, B, C = 0.01, 0.03, 0.01


@dispatcher.add
async def diamond_a() -> int:
    await asyncio.sleep(A)
    return 1


@dispatcher.add
async def diamond_b() -> int:
    await asyncio.sleep(B)
    return 2


@dispatcher.add
async def diamond_c(diamond_a: int) -> int:
    await asyncio.sleep(C)
    return diamond_a + 2


@service.endpoint("/diamond")
async def diamond(diamond_c, diamond_b) -> int:  # dispatcher results, by name
    return diamond_c + diamond_b


@service.endpoint("/diamond-stages")
async def diamond_stages() -> int:
    a, b = await asyncio.gather(diamond_a(), diamond_b())
    return await diamond_c(a) + b
