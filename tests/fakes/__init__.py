"""Fakes at the edges: a scripted tool-calling chat model (for graph unit tests) and, in openai_server.py,
a small OpenAI-compatible HTTP server (for ChatOpenAI end to end)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Step = AIMessage | str | Callable[[list[BaseMessage]], AIMessage | str]

_ids = itertools.count(1)


def usage(input_tokens: int = 800, output_tokens: int = 40, cached: int = 0) -> dict[str, Any]:
    """``usage_metadata`` as ChatOpenAI reports it."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "input_token_details": {"cache_read": cached},
        "output_token_details": {"reasoning": 0},
    }


def call(name: str, /, **args: Any) -> AIMessage:
    """An assistant message asking for one tool call."""
    return calls((name, args))


def calls(*wanted: tuple[str, dict[str, Any]], tokens: tuple[int, int] = (800, 40)) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[
            {"name": n, "args": a, "id": f"call_{next(_ids)}", "type": "tool_call"} for n, a in wanted
        ],
        usage_metadata=usage(*tokens),  # type: ignore[arg-type]
        response_metadata={"model_name": "scripted-1"},
    )


def say(text: str, tokens: tuple[int, int] = (900, 60)) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata=usage(*tokens),  # type: ignore[arg-type]
        response_metadata={"model_name": "scripted-1"},
    )


class ScriptedChatModel(BaseChatModel):
    """Plays ``script`` one step per call: an AIMessage, a text, or a function of the messages received.

    Records the messages of every call (``received``) and the tool names bound (``bound``). Running past
    the end of the script fails the test with the conversation so far.
    """

    script: list[Any]
    received: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[list[str]] = Field(default_factory=list)
    model_name: str = "scripted"

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        schemas = [convert_to_openai_tool(t) for t in tools]
        self.bound.append([s["function"]["name"] for s in schemas])
        return self.bind(tools=schemas, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(list(messages))
        index = len(self.received) - 1
        if index >= len(self.script):
            raise AssertionError(
                f"the script has {len(self.script)} steps; call {index + 1} got {messages!r}"
            )
        step = self.script[index]
        message = step(list(messages)) if callable(step) else step
        if isinstance(message, str):
            message = AIMessage(content=message)
        return ChatResult(generations=[ChatGeneration(message=message)])
