"""Token normalisation: one table of cases per source semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tools.ingest.records import TokenCounts
from tools.ingest.tokens import (
    from_anthropic_usage,
    from_litellm_usage,
    from_openai_usage,
    from_otel_usage,
)

T = TokenCounts

# (id, function, args, kwargs, expected TokenCounts)
CASES: list[tuple[str, Callable[..., TokenCounts], tuple[int, ...], dict[str, int], TokenCounts]] = [
    ("openai-no-cache", from_openai_usage, (1000, 500), {}, T(input_uncached=1000, output=500)),
    (
        "openai-cached-inside-input",
        from_openai_usage,
        (1000, 500),
        {"input_cached_tokens": 200},
        T(input_uncached=800, cache_read=200, output=500),
    ),
    (
        "openai-cache-write-inside-input",
        from_openai_usage,
        (1000, 500),
        {"input_cached_tokens": 200, "input_cache_write_tokens": 300},
        T(input_uncached=500, cache_read=200, cache_write=300, output=500),
    ),
    (
        "openai-reasoning-inside-output",
        from_openai_usage,
        (1000, 500),
        {"reasoning_tokens": 120},
        T(input_uncached=1000, output=380, reasoning=120),
    ),
    (
        "openai-all-input-cached",
        from_openai_usage,
        (1000, 0),
        {"input_cached_tokens": 1000},
        T(cache_read=1000),
    ),
    (
        "otel-cache-read-and-creation-inside-input",
        from_otel_usage,
        (2000, 100),
        {"cache_read_input_tokens": 300, "cache_creation_input_tokens": 1500},
        T(input_uncached=200, cache_read=300, cache_write=1500, output=100),
    ),
    (
        "otel-reasoning-inside-output",
        from_otel_usage,
        (1000, 200),
        {"cache_read_input_tokens": 400, "reasoning_output_tokens": 50},
        T(input_uncached=600, cache_read=400, output=150, reasoning=50),
    ),
    (
        "litellm-cached-inside-prompt",
        from_litellm_usage,
        (1200, 300),
        {"cached_tokens": 1000, "reasoning_tokens": 100},
        T(input_uncached=200, cache_read=1000, output=200, reasoning=100),
    ),
    (
        "litellm-cache-creation-inside-prompt",
        from_litellm_usage,
        (2500, 100),
        {"cached_tokens": 300, "cache_creation_tokens": 2000},
        T(input_uncached=200, cache_read=300, cache_write=2000, output=100),
    ),
    (
        "anthropic-exclusive-kinds-add-up",
        from_anthropic_usage,
        (1500, 500),
        {"cache_read_input_tokens": 200, "cache_creation_5m_tokens": 500},
        T(input_uncached=1500, cache_read=200, cache_write=500, output=500),
    ),
    (
        "anthropic-1h-cache-writes",
        from_anthropic_usage,
        (1500, 500),
        {"cache_read_input_tokens": 200, "cache_creation_5m_tokens": 500, "cache_creation_1h_tokens": 1000},
        T(input_uncached=1500, cache_read=200, cache_write=1500, cache_write_1h=1000, output=500),
    ),
    (
        "anthropic-cache-larger-than-uncached-is-fine",
        from_anthropic_usage,
        (10, 5),
        {"cache_read_input_tokens": 90_000},
        T(input_uncached=10, cache_read=90_000, output=5),
    ),
]


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "expected"),
    [pytest.param(fn, args, kwargs, expected, id=case_id) for case_id, fn, args, kwargs, expected in CASES],
)
def test_tokens_normalise_per_source_semantics(
    function: Callable[..., TokenCounts], args: tuple[int, ...], kwargs: dict[str, Any], expected: TokenCounts
) -> None:
    counts = function(*args, **kwargs)
    assert counts == expected


@pytest.mark.parametrize(
    ("function", "args", "kwargs"),
    [pytest.param(fn, args, kwargs, id=case_id) for case_id, fn, args, kwargs, _ in CASES],
)
def test_tokens_total_never_double_counts_cache(
    function: Callable[..., TokenCounts], args: tuple[int, ...], kwargs: dict[str, Any]
) -> None:
    counts = function(*args, **kwargs)
    if function is from_anthropic_usage:
        # exclusive kinds: the total is the plain sum of every reported count
        expected_total = args[0] + args[1] + sum(kwargs.values())
    else:
        # inclusive sources: cached/reasoning are already inside the input/output totals
        expected_total = args[0] + args[1]
    assert counts.total == expected_total


REJECTED: list[tuple[str, Callable[..., TokenCounts], tuple[int, ...], dict[str, int], str]] = [
    ("openai-cached-exceeds-input", from_openai_usage, (100, 10), {"input_cached_tokens": 101}, "exceed"),
    (
        "openai-cached-plus-write-exceeds-input",
        from_openai_usage,
        (100, 10),
        {"input_cached_tokens": 60, "input_cache_write_tokens": 50},
        "exceed",
    ),
    ("openai-reasoning-exceeds-output", from_openai_usage, (100, 10), {"reasoning_tokens": 11}, "reasoning"),
    ("otel-cache-read-exceeds-input", from_otel_usage, (5, 1), {"cache_read_input_tokens": 6}, "exceed"),
    ("litellm-cached-exceeds-prompt", from_litellm_usage, (5, 1), {"cached_tokens": 9}, "exceed"),
    ("openai-negative-input", from_openai_usage, (-1, 0), {}, "negative"),
    ("anthropic-negative-output", from_anthropic_usage, (1, -5), {}, "negative"),
]


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "message"),
    [pytest.param(fn, args, kwargs, msg, id=case_id) for case_id, fn, args, kwargs, msg in REJECTED],
)
def test_tokens_inconsistent_counts_raise(
    function: Callable[..., TokenCounts], args: tuple[int, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        function(*args, **kwargs)
