import asyncio

from sluice.workqueue import WorkQueue


def test_keys_coalesce_while_queued() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        for key in ["a", "b", "a", "a"]:
            queue.add(key)
        got = [await queue.get(), await queue.get()]
        assert len(queue) == 0
        return got

    assert asyncio.run(scenario()) == ["a", "b"]


def test_key_added_during_processing_is_processed_again_after() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")  # an event arrives mid-reconcile
        assert len(queue) == 0  # not handed to a second worker concurrently
        queue.done(key)
        assert await asyncio.wait_for(queue.get(), 1) == "a"

    asyncio.run(scenario())


def test_add_after_fires_once_at_the_earliest_deadline() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 5)
        queue.add_after("a", 0.01)
        assert await asyncio.wait_for(queue.get(), 1) == "a"

    asyncio.run(scenario())
