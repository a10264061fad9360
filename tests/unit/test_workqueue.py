import asyncio

from sluice.workqueue import IDLE, URGENT, WorkQueue


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


def test_urgent_keys_are_handed_out_first_and_an_urgent_add_moves_a_queued_key_up() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        for key in ["new-1", "new-2", "new-3"]:
            queue.add(key)
        queue.add("going", URGENT)
        queue.add("new-3", URGENT)  # its pod changed while it waited
        return [await queue.get() for _ in range(4)]

    assert asyncio.run(scenario()) == ["going", "new-3", "new-1", "new-2"]


def test_waiting_workers_are_woken_one_per_key() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        workers = [asyncio.create_task(queue.get()) for _ in range(3)]
        await asyncio.sleep(0)  # let them all wait (not synchronisation of results)
        queue.add("a")
        queue.add("b")
        got = await asyncio.wait_for(asyncio.gather(workers[0], workers[1]), 1)
        assert not workers[2].done()  # no key for it: still waiting
        workers[2].cancel()
        return sorted(got)

    assert asyncio.run(scenario()) == ["a", "b"]


def test_idle_keys_wait_for_every_other_lane_and_a_key_is_handed_out_once() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("finished", IDLE)
        queue.add("new")
        queue.add("finished")  # moves up to NORMAL, behind "new"
        queue.add("going", URGENT)
        got = [await queue.get() for _ in range(3)]
        assert len(queue) == 0  # the stale IDLE entry of "finished" is not handed out again
        return got

    assert asyncio.run(scenario()) == ["going", "new", "finished"]
