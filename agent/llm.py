"""The chat model of the question graph: ``ChatOpenAI`` against any OpenAI-compatible endpoint.

Configured by ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``FINOPS_LLM_MODEL`` (config/settings.py). The
model is called through the chat-completions API (never the Responses API, which most compatible
endpoints lack) and never streams: one request, one response carrying its token usage, which the agent
meters (agent/metering.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.errors import FinOpsError

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

    from config.settings import Settings


class LLMError(FinOpsError):
    """The model endpoint is not configured, or it failed to answer."""


NOT_CONFIGURED = (
    "no model endpoint is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible "
    "endpoint other than OpenAI's, FINOPS_LLM_MODEL for the model), or ask offline"
)


def make_chat_model(settings: Settings) -> ChatOpenAI | None:
    """A ``ChatOpenAI`` for ``settings``, or None when no API key is set."""
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.llm_model,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        temperature=0,
        streaming=False,
        disable_streaming=True,  # even when a caller attaches a streaming callback
        use_responses_api=False,  # chat completions: what every OpenAI-compatible endpoint serves
    )


def describe_endpoint(settings: Settings) -> str:
    """Where the model runs, for messages (never the key)."""
    return f"{settings.llm_model} at {settings.openai_base_url or 'https://api.openai.com/v1'}"
