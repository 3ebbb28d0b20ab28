"""Object storage (OBS): the client a synced store uses, and the header signature."""

from __future__ import annotations
