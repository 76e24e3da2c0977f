"""The numbering that tells a hub it missed layer messages (rooms/numbering.py): pure logic."""

from __future__ import annotations

from rooms.numbering import FORGET_SECONDS, Numbering


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_numbers_run_per_group_and_a_number_that_went_nowhere_is_given_again() -> None:
    sender = Numbering("a", Clock())
    assert [sender.next("room.1"), sender.next("room.1"), sender.next("room.2")] == [1, 2, 1]
    assert sender.last("room.1") == 2 and sender.last("room.3") == 0
    sender.take_back("room.1")
    assert sender.next("room.1") == 2


def test_a_skipped_number_is_counted_once_and_only_in_groups_being_compared() -> None:
    hub = Numbering("b", Clock())
    assert hub.missed("room.1", "a", 5) == 0  # not compared: a group left or being joined
    hub.compare(["room.1"])
    assert hub.missed("room.1", "a", 7) == 0  # the first number heard from a sender
    assert hub.missed("room.1", "a", 8) == 0
    assert hub.missed("room.1", "a", 11) == 2  # 9 and 10 never came
    assert hub.missed("room.1", "a", 12) == 0
    assert hub.missed("room.1", "c", 40) == 0  # each sender on its own
    hub.stop_comparing("room.1")
    assert hub.missed("room.1", "a", 20) == 0


def test_a_repeated_number_shows_a_gap_only_when_the_message_it_repeats_never_came() -> None:
    hub = Numbering("b", Clock())
    hub.compare(["room.1"])
    hub.missed("room.1", "a", 3)
    assert hub.missed("room.1", "a", 3, repeat=True) == 0
    assert hub.missed("room.1", "a", 4, repeat=True) == 1


def test_old_numbers_are_forgotten_so_a_group_sent_to_again_starts_afresh() -> None:
    clock = Clock()
    hub = Numbering("b", clock)
    hub.compare(["room.1"])
    hub.next("room.9")
    hub.missed("room.1", "a", 50)
    clock.now = FORGET_SECONDS / 2 + 1
    hub.forget_old()
    # The receiver forgets first: a sender that starts again at 1 is no gap, and no regress.
    assert hub.missed("room.1", "a", 1) == 0 and hub.missed("room.1", "a", 2) == 0
    assert hub.last("room.9") == 1
    clock.now = FORGET_SECONDS + 1
    hub.forget_old()
    assert hub.next("room.9") == 1
