"""tidsmith as a LangChain Runnable, so it composes into LCEL chains.

    from agent import as_runnable
    tid = as_runnable(template="tid", model="anthropic:claude-sonnet-4-6")
    chain = pick_tdd | tid | (lambda doc: doc.path)
    chain.batch(paths, config={"max_concurrency": 2})

The input is a TDD path (str or Path) or a mapping with `tdd` and, optionally,
`out`; the output is the `Document` (markdown, path, sections, run record,
review). Each drafted section is a custom event named `tidsmith.section`
(`astream_events` shows it as `on_custom_event`); research, review and other
steps are `tidsmith.progress` events.

A front end: it imports the pipeline and core, never the cli or another front
end (chat, evaluate, mcp_server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.runnables import Runnable, RunnableConfig

from agent.core.errors import InputError
from agent.core.records import Event
from agent.core.settings import Settings
from agent.core.templates import Template, get_template
from agent.pipeline.actions import EventPump, SectionCounter
from agent.pipeline.generate import Document, agenerate

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

    from research import ResearchConfig

TddInput = str | Path | Mapping[str, Any]

SECTION_EVENT = "tidsmith.section"
PROGRESS_EVENT = "tidsmith.progress"


def _event_data(counter: SectionCounter, event: Event) -> tuple[str, dict[str, Any]] | None:
    """The custom event (name, data) for a pipeline event, or None for events not reported."""
    first = counter.drafted(event)
    if first:
        return SECTION_EVENT, {
            "section": event.section,
            "done": len(counter.done),
            "total": counter.total,
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "resumed": event.resumed,
        }
    if first is False:
        return PROGRESS_EVENT, {"section": event.section, "detail": "re-drafted"}
    if event.kind in {"info", "retry", "failed"}:
        return PROGRESS_EVENT, {"section": event.section, "detail": event.detail or event.kind}
    return None


class TidsmithRunnable(Runnable[TddInput, Document]):
    """A TDD in, a TID or Spec `Document` out. Built by `as_runnable`."""

    def __init__(
        self,
        *,
        template: str | Template = "tid",
        model: str | Any | None = None,
        settings: Settings | None = None,
        out: str | Path | None = None,
        force: bool = False,
        write: bool = True,
        research: ResearchConfig | bool = False,
        retrievers: Sequence[BaseRetriever] = (),
        review_appendix: bool = False,
    ) -> None:
        self.template = get_template(template) if isinstance(template, str) else template
        self.model = model
        self.settings = settings
        self.out = out
        self.force = force
        self.write = write
        self.research = research
        self.retrievers = retrievers
        self.review_appendix = review_appendix

    @property
    def InputType(self) -> type[TddInput]:
        return cast(type[TddInput], TddInput)

    @property
    def OutputType(self) -> type[Document]:
        return Document

    def _arguments(self, value: TddInput) -> tuple[Path, str | Path | None]:
        if isinstance(value, str | Path):
            return Path(value), self.out
        if isinstance(value, Mapping) and "tdd" in value:
            return Path(value["tdd"]), value.get("out", self.out)
        raise InputError(
            f"tidsmith runnable input must be a TDD path or a mapping with 'tdd', "
            f"not {type(value).__name__}"
        )

    async def _run(self, value: TddInput, emit: Any) -> Document:
        tdd, out = self._arguments(value)
        return await agenerate(
            tdd,
            template=self.template,
            model=self.model,
            out=out,
            force=self.force,
            write=self.write,
            settings=self.settings,
            on_event=emit,
            research=self.research,
            retrievers=self.retrievers,
            review_appendix=self.review_appendix,
        )

    def _sections(self) -> SectionCounter:
        return SectionCounter([s.id for s in self.template.sections])

    def invoke(
        self, input: TddInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Document:
        def call(
            value: TddInput, run_manager: CallbackManagerForChainRun, config: RunnableConfig
        ) -> Document:
            counter = self._sections()

            def emit(event: Event) -> None:
                custom_event = _event_data(counter, event)
                if custom_event is not None:
                    dispatch_custom_event(custom_event[0], custom_event[1], config=config)

            return asyncio.run(self._run(value, emit))

        return self._call_with_config(call, input, config, **kwargs)

    async def ainvoke(
        self,
        input: TddInput,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Document:
        async def call(
            value: TddInput,
            run_manager: AsyncCallbackManagerForChainRun,
            config: RunnableConfig,
        ) -> Document:
            counter = self._sections()

            async def send(custom_event: tuple[str, dict[str, Any]]) -> None:
                await adispatch_custom_event(custom_event[0], custom_event[1], config=config)

            pump: EventPump[tuple[str, dict[str, Any]]] = EventPump(send)

            def emit(event: Event) -> None:
                custom_event = _event_data(counter, event)
                if custom_event is not None:
                    pump.put(custom_event)

            try:
                doc = await self._run(value, emit)
            except BaseException:
                pump.cancel()
                raise
            await pump.finish()
            return doc

        return await self._acall_with_config(call, input, config, **kwargs)


def as_runnable(
    *,
    template: str | Template = "tid",
    model: str | Any | None = None,
    settings: Settings | None = None,
    out: str | Path | None = None,
    force: bool = False,
    write: bool = True,
    research: ResearchConfig | bool = False,
    retrievers: Sequence[BaseRetriever] = (),
    review_appendix: bool = False,
) -> TidsmithRunnable:
    """tidsmith as a langchain-core Runnable: invoke, ainvoke, batch, astream_events.

    Takes the options of `agent.agenerate` (see there); each input is a TDD
    path or `{"tdd": PATH, "out": PATH}`. `batch(..., config={"max_concurrency":
    N})` generates at most N documents at once. With `write=False` nothing is
    written and the Document's `markdown` is the result.
    """
    return TidsmithRunnable(
        template=template,
        model=model,
        settings=settings,
        out=out,
        force=force,
        write=write,
        research=research,
        retrievers=retrievers,
        review_appendix=review_appendix,
    )
