"""The two platforms and the linkage hotlines: the closed sets every other contract refers to.

Kept apart from :mod:`hotline.contracts` so that :mod:`hotline.types` (which the contracts use) can
name them without an import cycle.
"""

from __future__ import annotations

import enum


class Service(enum.StrEnum):
    HOTLINE_12345 = "12345"
    POLICE_110 = "110"


LINKAGE_HOTLINES = ("119", "120", "122", "water", "power", "gas", "heating")
