"""Resolving a job's or endpoint's image: what the engine holds, or a built-in algorithm's
image, built on first use."""

from __future__ import annotations

import asyncio

from mlmarket import builtin
from mlmarket.execution.base import ContainerEngine


async def resolve(engine: ContainerEngine, image: str) -> tuple[str, str] | None:
    """(image id, reported name@digest), or None when the image exists nowhere."""
    resolved = await engine.resolve_image(image)
    if resolved is None and builtin.builtin_name(image) is not None:
        await asyncio.to_thread(builtin.ensure, image)
        resolved = await engine.resolve_image(image)
    return resolved
