"""Any LangChain chat model the library user hands us.

The only module that imports `langchain_core`. Structured output is not
assumed: a generic chat model may lack it, so the schema travels in the prompt
and the pipeline parses and validates the text. Imports agent.core and
agent.providers.base only.
"""

from __future__ import annotations

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent.core.errors import ProviderError
from agent.core.models import run_defaults
from agent.core.records import Usage
from agent.core.redact import redact
from agent.providers.base import Message, Reply, Request

# Stop reasons across LangChain integrations (OpenAI's finish_reason, Anthropic's
# stop_reason) in the vocabulary the pipeline checks.
_FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}


def to_langchain(message: Message) -> BaseMessage:
    """One of our messages as the LangChain message of the same role."""
    if message.role == "system":
        return SystemMessage(content=message.content)
    if message.role == "assistant":
        return AIMessage(content=message.content)
    return HumanMessage(content=message.content)


def model_name_of(chat_model: BaseChatModel) -> str:
    """The name a run record shows: the model id if the integration has one."""
    for attr in ("model_name", "model"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    return chat_model._llm_type or type(chat_model).__name__  # pyright: ignore[reportPrivateUsage]


class LangChainProvider:
    """Text in, text out through `ainvoke`; the schema goes in the prompt.

    The chat model's own settings (temperature, max tokens) apply: set them
    when you build it. We do not pass ours, since integrations differ in
    which keyword arguments they accept.
    """

    name = "langchain"
    schema_in_text = True

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        model: str | None = None,
        max_concurrency: int | None = None,
        context_window: int | None = None,
    ) -> None:
        """Defaults not given here are the model table's for `other` providers."""
        defaults = run_defaults(self.name)
        self.chat_model = chat_model
        self.model = model or model_name_of(chat_model)
        self.default_max_tokens = defaults.max_tokens
        self.max_concurrency = max_concurrency or defaults.max_concurrency
        self.context_window = context_window or defaults.window
        self.label = f"langchain:{self.model}"

    async def complete(self, request: Request) -> Reply:
        messages = [to_langchain(m) for m in request.messages]
        try:
            answer = await self.chat_model.ainvoke(messages)
        except Exception as e:
            # A user's model can fail in any way its integration chooses; this is
            # the edge where that becomes our one provider error, cause chained.
            detail = " ".join(redact(f"{type(e).__name__}: {e}").split())[:300]
            raise ProviderError(
                f"{self.label}, section {request.label!r}: the chat model failed: {detail}"
            ) from e
        meta = answer.response_metadata
        stop = str(meta.get("finish_reason") or meta.get("stop_reason") or "stop")
        refusal = answer.additional_kwargs.get("refusal")
        text = str(answer.text)
        if stop == "refusal" and not refusal:
            refusal = text.strip() or "the model declined to answer"
        return Reply(
            text=text,
            usage=usage_of(answer),
            finish_reason=_FINISH.get(stop, stop),
            refusal=str(refusal) if refusal else None,
            model=str(meta.get("model_name") or meta.get("model") or self.model),
        )

    async def aclose(self) -> None:
        # The chat model belongs to the caller, who may still be using it.
        pass


def usage_of(answer: AIMessage) -> Usage | None:
    """Token counts when the integration reports them (LangChain's input includes cache reads).

    None when it does not: the call's cost is then unknown, not zero.
    """
    meta = answer.usage_metadata
    if meta is None:
        return None
    details = meta.get("input_token_details") or {}
    return Usage(
        input_tokens=int(meta.get("input_tokens", 0)),
        output_tokens=int(meta.get("output_tokens", 0)),
        cached_tokens=int(details.get("cache_read", 0) or 0),
        cache_write_tokens=int(details.get("cache_creation", 0) or 0),
    )
