"""The OpenAI Batch API half of OpenAIProvider: a JSONL file of chat-completion bodies.

Answered within 24 h at a discount; each line's body is the one a live call
would post (`chat_body`). Imports agent.core and agent.providers modules only:
the SDK client is the provider's, never imported here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from agent.core.errors import ConfigError, ProviderError
from agent.providers.base import BatchItem, BatchStatus, Request
from agent.providers.failures import VendorErrors, one_line
from agent.providers.openai_reply import reply_of
from agent.providers.retry import RetryPolicy

T = TypeVar("T")

BATCH_ENDPOINT = "/v1/chat/completions"
# OpenAI's bounds on one batch's input file.
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 200 * 10**6


class OpenAIBatchAPI:
    """Batch methods of OpenAIProvider, which sets these attributes and `chat_body`."""

    _client: Any
    errors: VendorErrors
    label: str
    model: str
    retry: RetryPolicy
    timeout: float

    def chat_body(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    async def submit_batch(self, requests: Mapping[str, Request]) -> str:
        """Upload one JSONL line per request and start a batch over them; returns its id."""
        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": BATCH_ENDPOINT,
                    "body": self.chat_body(request),
                }
            )
            for custom_id, request in requests.items()
        ]
        data = ("\n".join(lines) + "\n").encode()
        if len(lines) > BATCH_MAX_REQUESTS or len(data) > BATCH_MAX_BYTES:
            raise ConfigError(
                f"{len(lines)} requests ({len(data) / 1e6:.0f} MB) are more than one OpenAI "
                f"batch takes ({BATCH_MAX_REQUESTS} requests, {BATCH_MAX_BYTES // 10**6} MB); "
                "run the batch on fewer TDDs (--glob)"
            )
        upload = await self._batch_call(
            lambda: self._client.files.create(
                file=("tidsmith-batch.jsonl", data, "application/jsonl"), purpose="batch"
            ),
            "uploading the requests",
        )
        # Not retried: a create whose answer was lost may still have started a
        # batch, and a second one would be paid for twice.
        batch = await self._batch_call(
            lambda: self._client.batches.create(
                input_file_id=upload.id, endpoint=BATCH_ENDPOINT, completion_window="24h"
            ),
            "creating the batch",
            retry=False,
        )
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Where the batch stands, in counts of requests."""
        batch = await self._batch_call(
            lambda: self._client.batches.retrieve(batch_id), "checking the batch"
        )
        counts = batch.request_counts
        failed = ""
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
            failed = "; ".join(one_line(e.message or e.code or "") for e in errors[:3])
            failed = failed or "the provider gave no reason"
        return BatchStatus(
            batch_id=batch.id,
            status=batch.status,
            # Expired and cancelled batches still hand back what they finished.
            ended=batch.status in ("completed", "expired", "cancelled"),
            failed=failed,
            total=counts.total if counts is not None else 0,
            succeeded=counts.completed if counts is not None else 0,
            errored=counts.failed if counts is not None else 0,
        )

    async def batch_results(self, batch_id: str) -> dict[str, BatchItem]:
        """Every answered request by custom_id: its Reply, or why it failed."""
        batch = await self._batch_call(
            lambda: self._client.batches.retrieve(batch_id), "checking the batch"
        )
        items: dict[str, BatchItem] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._batch_call(
                lambda file_id=file_id: self._client.files.content(file_id),
                "downloading the results",
            )
            for line in content.text.splitlines():
                if line.strip():
                    custom_id, item = self._batch_line(json.loads(line))
                    items[custom_id] = item
        return items

    def _batch_line(self, line: dict[str, Any]) -> tuple[str, BatchItem]:
        """One line of an output or error file: a 200 holds a chat completion."""
        custom_id = str(line.get("custom_id", ""))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        if line.get("error") or status != 200:
            error = line.get("error") or body.get("error") or {}
            why = one_line(str(error.get("message") or error.get("code") or "no reason given"))
            return custom_id, BatchItem(error=f"{status or 'failed'}: {why[:300]}")
        where = f"{self.label}, batch request {custom_id}"
        try:
            return custom_id, BatchItem(reply=reply_of(body, self.model, where))
        except ProviderError as e:
            return custom_id, BatchItem(error=str(e))

    async def _batch_call(
        self, call: Callable[[], Awaitable[T]], what: str, *, retry: bool = True
    ) -> T:
        where = f"{self.label}, provider batch ({what})"
        policy = self.retry if retry else RetryPolicy(max_retries=0)
        return await self.errors.batch_call(call, policy, timeout=self.timeout, where=where)
