"""Budgets that make a client wait its turn (rooms/ratelimit.py) cost the worker one check of the
bucket per turn, however many of a user's requests wait."""

from __future__ import annotations

import asyncio

from rooms import ratelimit


async def test_many_waiting_requests_of_one_user_ask_the_bucket_once_per_turn(monkeypatch):
    budget = ratelimit.Budget("test-wait", rate=50, burst=1)
    asked = 0
    allow = ratelimit.allow

    async def counted(user_id: int, budget: ratelimit.Budget | None = None) -> bool:
        nonlocal asked
        asked += 1
        return await allow(user_id, budget)

    monkeypatch.setattr(ratelimit, "allow", counted)
    waiting = [ratelimit.wait_for(7, budget) for _ in range(40)]
    async with asyncio.timeout(5):
        await asyncio.gather(*waiting)
    # Every one got through, at the budget's pace (about 0.8 s for 40 at 50 a second); each
    # asked once on arrival, and then only the one at the head of the line asked again.
    assert asked < 40 + 40 * 3, asked
    assert ratelimit._lines == {}
