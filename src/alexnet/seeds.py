"""One seeding rule for every random thing: its own stream, derived from the run's seed and the stream's name.

Weight initialisation (per layer), each dropout layer, the colour noise, the crops and flips, the shuffle and
the TensorBoard sample each draw from `stream_seed(train.seed, name)`. Two streams never share a seed (two
Keras layers given the same integer seed draw the same numbers in step: two Dropout layers of equal width
would drop the same units), and the same run seed always gives the same streams, so a seeded run repeats.

Example:
    stream_seed(0, "dropout/dropout6")   # a 31-bit integer, the same on every machine
    stream_seed(None, "shuffle/0")       # None: drawn afresh (unseeded)
"""

from __future__ import annotations

import hashlib


def stream_seed(seed: int | None, stream: str) -> int | None:
    """The seed of the named stream of a run seeded with `seed` (a 31-bit integer), or None when seed is None."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"alexnet/{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF
