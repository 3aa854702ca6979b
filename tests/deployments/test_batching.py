"""`deployments.batching`: the `@serve.batch` knobs, and a batch queue that follows the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from ray import serve

from deployments import batching
from deployments.config import BatchingSettings
from tests.deployments._inprocess import replica_context


class Doubler:
    """A stage-like class: `double` answers one call, `_batch` a batch of them."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def reconfigure(self, config: dict[str, object]) -> None:
        batching.configure(self._batch, BatchingSettings.model_validate(config))

    async def double(self, value: int) -> int:
        return await self._batch(value)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _batch(self, values: list[int]) -> list[int]:
        self.batches.append(list(values))
        return [2 * v for v in values]


@pytest.fixture(autouse=True)
def _context() -> Iterator[None]:
    with replica_context(None):
        yield


def test_concurrent_calls_share_batches_of_at_most_max_batch_size() -> None:
    async def scenario() -> tuple[list[int], Doubler, dict[str, object]]:
        doubler = Doubler()
        await doubler.reconfigure({"max_batch_size": 3})
        answers = await asyncio.gather(*(doubler.double(v) for v in range(7)))
        return list(answers), doubler, batching.describe(doubler._batch)

    answers, doubler, knobs = asyncio.run(scenario())
    assert answers == [0, 2, 4, 6, 8, 10, 12]  # each caller gets its own answer
    assert sorted(v for batch in doubler.batches for v in batch) == list(range(7))
    assert max(len(batch) for batch in doubler.batches) == 3
    assert len(doubler.batches) < 7  # concurrent calls were batched
    assert knobs == {"max_batch_size": 3, "batch_wait_timeout_s": 0.0}


def test_a_new_instance_on_a_new_event_loop_gets_answers() -> None:
    async def one_loop(value: int) -> int:
        doubler = Doubler()
        await doubler.reconfigure({})
        return await asyncio.wait_for(doubler.double(value), timeout=10)

    # Without dropping the queue bound to the first (closed) loop, the second call hangs.
    assert asyncio.run(one_loop(1)) == 2
    assert asyncio.run(one_loop(5)) == 10


def test_a_call_alone_is_answered_alone() -> None:
    async def scenario() -> Doubler:
        doubler = Doubler()
        await doubler.reconfigure({})
        for value in range(3):
            assert await doubler.double(value) == 2 * value
        return doubler

    assert asyncio.run(scenario()).batches == [[0], [1], [2]]
