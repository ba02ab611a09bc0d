"""Pure: how long to wait before a node's retry, and before a workflow-level re-run."""

from __future__ import annotations

import random

from .._models import ErrorHandling, WorkflowRetry

_default_rng = random.Random()


def wait_before_retry(policy: ErrorHandling, k: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``k`` (0-based) under ``policy``.

    ``retry_interval_seconds * backoff_rate ** k``, capped by ``max_interval_seconds``; with
    ``jitter`` j the wait is drawn uniformly from ``[(1 - j) * wait, wait]`` (j = 1: full jitter).
    """
    wait = policy.retry_interval_seconds * policy.backoff_rate**k
    if policy.max_interval_seconds is not None:
        wait = min(wait, policy.max_interval_seconds)
    if policy.jitter:
        wait *= 1.0 - policy.jitter * (rng or _default_rng).random()
    return wait


def wait_before_rerun(retry: WorkflowRetry, k: int) -> float:
    """Seconds to wait before the workflow's re-run ``k`` (0-based) under ``retry``:
    ``delay_seconds * backoff_rate ** k``."""
    return retry.delay_seconds * retry.backoff_rate**k
