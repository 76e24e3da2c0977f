"""How a hub notices lost layer messages: what it numbers, per group, and what it heard.

Each hub numbers the messages it sends to each channel-layer group 1, 2, 3… (its `origin` and
`n`); every hub compares the numbers it hears in a group with the last one it heard from that
sender there. A number skipped means messages of that group were lost on the way to this hub.
A `repeat` (a beat that tells a group its last number again) is no new message: it shows a gap
when the message it repeats never came. rooms/fanout.py says what a hub does about a gap.

Pure bookkeeping, with the clock passed in: no layer, no loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# A hub forgets the numbering of a group it has not sent to for this long (and receivers, of a
# sender they have not heard from in a group, after half of it): a group it sends to again
# starts afresh.
FORGET_SECONDS = 600.0


class Numbering:
    """One hub's numbers: those it gave, per group, and those it heard, per group and sender."""

    def __init__(self, origin: str, clock: Callable[[], float]) -> None:
        self.origin = origin
        self.clock = clock
        # group -> [last number given, when]
        self.given: dict[str, list[float]] = {}
        # group -> sender -> (last number heard, when); only for groups being compared
        self.heard: dict[str, dict[str, tuple[int, float]]] = {}

    def next(self, group: str) -> int:
        """The number of this hub's next message to the group."""
        given = self.given.get(group)
        n = (int(given[0]) if given else 0) + 1
        self.given[group] = [n, self.clock()]
        return n

    def last(self, group: str) -> int:
        """The number of this hub's last message to the group (0: none)."""
        given = self.given.get(group)
        return int(given[0]) if given else 0

    def take_back(self, group: str) -> None:
        """The last number given to the group went nowhere and carried nothing: give it again."""
        given = self.given.get(group)
        if given and given[0] > 0:
            given[0] -= 1

    def compare(self, groups: Iterable[str]) -> None:
        """Compare numbers heard in these groups from now on (a hub joined them)."""
        for group in groups:
            self.heard[group] = {}

    def stop_comparing(self, group: str) -> None:
        """A hub left the group: what still comes from it is not compared."""
        self.heard.pop(group, None)

    def missed(self, group: str, origin: str, n: int, repeat: bool = False) -> int:
        """Note number `n` from `origin` in `group`; how many of its messages were skipped."""
        heard = self.heard.get(group)
        if heard is None:
            return 0  # a group this hub left, or is joining: nothing to compare with
        last = heard.get(origin)
        skipped = 0
        if last is not None:
            skipped = max(0, n - last[0] - (0 if repeat else 1))
        heard[origin] = (max(n, last[0]) if last else n, self.clock())
        return skipped

    def forget_old(self) -> None:
        """Forget groups this hub no longer sends to, and senders gone quiet in a group."""
        now = self.clock()
        for group, (_, at) in list(self.given.items()):
            if now - at > FORGET_SECONDS:
                del self.given[group]
        for heard in self.heard.values():
            for origin, (_, at) in list(heard.items()):
                if origin != self.origin and now - at > FORGET_SECONDS / 2:
                    del heard[origin]
