"""The vocabulary of two-domain translation, in one place: the data images, the domains they
come from, the directions between them, and each domain's channel count.

Domain A and domain B are the two image sets of an unpaired (or paired) dataset; the data gives one
batch of each per iteration as ``real_A`` and ``real_B``; a direction ``AtoB`` translates A images
into B images (Zhu et al., ICCV 2017 call the two generators G: A -> B and F: B -> A).
"""

from __future__ import annotations

import re


#: Images the data provides to every iteration.
DATA_IMAGES = ("real_A", "real_B")


#: With ``data.second_sample``: a second image of each domain, drawn independently.
SECOND_SAMPLES = ("real_A2", "real_B2")


DOMAIN_OF = {"real_A": "A", "real_B": "B", "real_A2": "A", "real_B2": "B"}


#: A direction between the two data domains, e.g. ``AtoB``.
DIRECTION = re.compile(r"([AB])to([AB])")


def domain_channels(channels, domain: str) -> int:
    """Channel count of ``domain`` ("A"/"B") from a dataset's ``channels``: one int for both
    domains, or a pair ``[C_A, C_B]`` (e.g. grey sketches to RGB photos: ``[1, 3]``).

    Raises:
        ValueError: not 1 or 3 per domain, or not an int or a pair.
    """
    values = list(channels) if isinstance(channels, (list, tuple)) or hasattr(channels, "__len__") else [channels] * 2
    if len(values) != 2 or any(c not in (1, 3) for c in values):
        raise ValueError(f"channels must be 1, 3 or a pair such as [1, 3]; got {channels}")
    return int(values["AB".index(domain)])
