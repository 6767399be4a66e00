"""Telling the running gateway that its configuration changed, after a successful write.

The gateway puts a callable on the admin app's state as `on_config_change`; it reloads what `topic`
names (its routing directory, say). Without one (the admin API alone, tests) nothing happens.
"""

from __future__ import annotations

import inspect
from typing import Literal

from fastapi import Request

Topic = Literal["employees", "numbers", "queue_groups", "crm", "trunks"]


async def config_changed(request: Request, topic: Topic) -> None:
    """Call `request.app.state.on_config_change(topic)` when the app has one (awaited if async)."""
    hook = getattr(request.app.state, "on_config_change", None)
    if hook is None:
        return
    result = hook(topic)
    if inspect.isawaitable(result):
        await result
