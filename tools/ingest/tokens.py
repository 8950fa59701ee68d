"""Token normalisation: one function per source's counting semantics, each returning ``TokenCounts``.

The sources disagree on what "input tokens" means, and double-counted cached tokens are the most
reported bug in LLM cost tools, so each source has its own function:

==================  ======================================  ===========================================
source              input total                             output total
==================  ======================================  ===========================================
OpenAI usage API    ``input_tokens`` INCLUDES cached reads  ``output_tokens`` INCLUDES reasoning tokens
                    (``input_cached_tokens``) and cache     (``output_tokens_details.reasoning_tokens``)
                    writes (``input_cache_write_tokens``)
OTel GenAI          ``gen_ai.usage.input_tokens`` INCLUDES  ``gen_ai.usage.output_tokens`` INCLUDES
                    ``cache_read.input_tokens`` and         ``gen_ai.usage.reasoning.output_tokens``
                    ``cache_creation.input_tokens``
LiteLLM spend logs  ``prompt_tokens`` INCLUDES cached and   ``completion_tokens`` INCLUDES reasoning
                    cache-creation tokens (OpenAI format)
Anthropic report    ``uncached_input_tokens`` EXCLUDES      ``output_tokens`` (thinking is not split out)
                    ``cache_read_input_tokens`` and the
                    ``cache_creation`` 5m / 1h writes
==================  ======================================  ===========================================

Inclusive sources whose parts exceed their total are inconsistent: that raises ``ValueError`` (the
parsers turn it into a ``Rejected`` row) instead of silently clamping at zero.
"""

from __future__ import annotations

from tools.ingest.records import TokenCounts


def _inclusive(
    source: str,
    *,
    input_total: int,
    output_total: int,
    cache_read: int,
    cache_write: int,
    cache_write_1h: int,
    reasoning: int,
    input_name: str,
    output_name: str,
) -> TokenCounts:
    counts = {
        input_name: input_total,
        output_name: output_total,
        "cache read": cache_read,
        "cache write": cache_write,
        "1h cache write": cache_write_1h,
        "reasoning": reasoning,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{source}: {name} tokens must not be negative, got {value}")
    if cache_read + cache_write > input_total:
        raise ValueError(
            f"{source}: cached tokens (cache read {cache_read} + cache write {cache_write}) exceed "
            f"{input_name} ({input_total}), which already include them: inconsistent record"
        )
    if reasoning > output_total:
        raise ValueError(
            f"{source}: reasoning tokens ({reasoning}) exceed {output_name} ({output_total}), "
            "which already include them: inconsistent record"
        )
    if cache_write_1h > cache_write:
        raise ValueError(
            f"{source}: 1h cache write tokens ({cache_write_1h}) exceed cache write tokens ({cache_write})"
        )
    return TokenCounts(
        input_uncached=input_total - cache_read - cache_write,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output_total - reasoning,
        reasoning=reasoning,
        cache_write_1h=cache_write_1h,
    )


def from_openai_usage(
    input_tokens: int,
    output_tokens: int,
    *,
    input_cached_tokens: int = 0,
    input_cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> TokenCounts:
    """OpenAI usage API / chat completion usage: cached reads and cache writes are inside input_tokens,
    reasoning tokens inside output_tokens."""
    return _inclusive(
        "OpenAI usage",
        input_total=input_tokens,
        output_total=output_tokens,
        cache_read=input_cached_tokens,
        cache_write=input_cache_write_tokens,
        cache_write_1h=0,
        reasoning=reasoning_tokens,
        input_name="input_tokens",
        output_name="output_tokens",
    )


def from_otel_usage(
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    reasoning_output_tokens: int = 0,
) -> TokenCounts:
    """OTel GenAI semantic conventions: ``gen_ai.usage.input_tokens`` includes
    ``gen_ai.usage.cache_read.input_tokens`` and ``gen_ai.usage.cache_creation.input_tokens``;
    ``gen_ai.usage.output_tokens`` includes ``gen_ai.usage.reasoning.output_tokens``."""
    return _inclusive(
        "OTel GenAI span",
        input_total=input_tokens,
        output_total=output_tokens,
        cache_read=cache_read_input_tokens,
        cache_write=cache_creation_input_tokens,
        cache_write_1h=0,
        reasoning=reasoning_output_tokens,
        input_name="gen_ai.usage.input_tokens",
        output_name="gen_ai.usage.output_tokens",
    )


def from_litellm_usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> TokenCounts:
    """LiteLLM spend logs (OpenAI format for every provider): prompt_tokens includes cache reads
    (``prompt_tokens_details.cached_tokens``) and cache writes (``cache_creation_input_tokens``);
    completion_tokens includes ``completion_tokens_details.reasoning_tokens``."""
    return _inclusive(
        "LiteLLM spend log",
        input_total=prompt_tokens,
        output_total=completion_tokens,
        cache_read=cached_tokens,
        cache_write=cache_creation_tokens,
        cache_write_1h=0,
        reasoning=reasoning_tokens,
        input_name="prompt_tokens",
        output_name="completion_tokens",
    )


def from_anthropic_usage(
    uncached_input_tokens: int,
    output_tokens: int,
    *,
    cache_read_input_tokens: int = 0,
    cache_creation_5m_tokens: int = 0,
    cache_creation_1h_tokens: int = 0,
) -> TokenCounts:
    """Anthropic usage report / Messages API usage: the kinds are exclusive and simply add up.

    ``uncached_input_tokens`` excludes cache reads and writes; cache writes are the 5m plus the 1h
    ephemeral writes, and the 1h part is also reported as ``cache_write_1h`` (priced higher).
    """
    counts = {
        "uncached_input_tokens": uncached_input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
        "cache_creation.ephemeral_5m_input_tokens": cache_creation_5m_tokens,
        "cache_creation.ephemeral_1h_input_tokens": cache_creation_1h_tokens,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"Anthropic usage: {name} must not be negative, got {value}")
    return TokenCounts(
        input_uncached=uncached_input_tokens,
        cache_read=cache_read_input_tokens,
        cache_write=cache_creation_5m_tokens + cache_creation_1h_tokens,
        output=output_tokens,
        reasoning=0,
        cache_write_1h=cache_creation_1h_tokens,
    )
