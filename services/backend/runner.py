"""Runs analyses in the background: asyncio tasks in the app that call ai_core and store the report.

An analysis goes queued → running → succeeded | failed. The worker writes a heartbeat while it owns an
analysis; an analysis whose heartbeat is older than the lease (its process died or was restarted) is
marked failed with "interrupted by restart" — at start-up and periodically, by any replica. We fail
rather than re-queue: the user sees a clear outcome and can resubmit, and an analysis that crashed its
worker is not retried in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool

from services.backend.settings import BackendSettings
from services.common import observability
from services.common.docstore import DocStore
from services.common.storage import ObjectNotFound, ObjectStore

RETRY_STATUSES = frozenset({502, 503, 504})
INTERRUPTED = "interrupted by restart"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class AnalysisFailed(Exception):
    pass


def _detail(response: httpx.Response) -> str:
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        detail = "; ".join(
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        )
    return str(detail or response.reason_phrase or "no detail")[:500]


class AnalysisRunner:
    def __init__(self, settings: BackendSettings, store: DocStore, storage: ObjectStore):
        self.settings = settings
        self.storage = storage
        self._tasks: set[asyncio.Task[None]] = set()
        self.use_store(store)

    def use_store(self, store: DocStore) -> None:
        """Switch to another connection (the database URL was rotated); running analyses follow."""
        self.analyses = store["analyses"]
        self.datasets = store["datasets"]

    def submit(self, analysis_id: str) -> None:
        task = asyncio.create_task(self._run(analysis_id), name=f"analysis-{analysis_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def reap_orphans(self) -> int:
        """Mark failed the active analyses whose worker stopped writing heartbeats; returns how many."""
        stale_before = time.time() - self.settings.analysis_lease_seconds
        reaped = 0
        for doc in self.analyses.find({"status": {"$in": ["queued", "running"]}}):
            beat = doc.get("heartbeat_at")
            if isinstance(beat, int | float) and beat >= stale_before:
                continue
            # Compare-and-set on the heartbeat we read, so a live worker's fresh beat wins the race.
            reaped += self.analyses.update_one(
                {"_id": doc["_id"], "status": doc["status"], "heartbeat_at": beat},
                {"$set": {"status": "failed", "error": INTERRUPTED, "finished_at": now_iso()}},
            )
        return reaped

    async def reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.analysis_lease_seconds / 2)
            with contextlib.suppress(Exception):
                await run_in_threadpool(self.reap_orphans)

    async def _heartbeat(self, analysis_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.analysis_lease_seconds / 3)
            await run_in_threadpool(
                self.analyses.update_one,
                {"_id": analysis_id, "status": "running"},
                {"$set": {"heartbeat_at": time.time()}},
            )

    async def _finish(self, analysis_id: str, update: dict[str, Any], outcome: str, started: float) -> None:
        matched = await run_in_threadpool(
            self.analyses.update_one,
            {"_id": analysis_id, "status": "running"},
            {"$set": {**update, "status": outcome, "finished_at": now_iso()}},
        )
        if matched:
            labels = (self.settings.service_name, self.settings.revision)
            observability.ANALYSES.labels(*labels, outcome).inc()
            observability.ANALYSIS_DURATION.labels(*labels).observe(time.perf_counter() - started)

    async def _run(self, analysis_id: str) -> None:
        started = time.perf_counter()
        claimed = await run_in_threadpool(
            self.analyses.update_one,
            {"_id": analysis_id, "status": "queued"},
            {"$set": {"status": "running", "heartbeat_at": time.time()}},
        )
        if not claimed:
            return  # deleted or reaped meanwhile
        heartbeat = asyncio.create_task(self._heartbeat(analysis_id))
        try:
            analysis = await run_in_threadpool(self.analyses.find_one, {"_id": analysis_id})
            if analysis is None:
                return
            report = await self._analyze(analysis)
        except AnalysisFailed as exc:
            await self._finish(analysis_id, {"error": str(exc)}, "failed", started)
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(analysis_id, {"error": INTERRUPTED}, "failed", started))
            raise
        except Exception as exc:  # the analysis must end in a state, whatever broke
            await self._finish(
                analysis_id, {"error": f"internal error: {type(exc).__name__}"}, "failed", started
            )
        else:
            await self._finish(analysis_id, {"error": None, "report": report}, "succeeded", started)
        finally:
            heartbeat.cancel()

    async def _analyze(self, analysis: dict[str, Any]) -> dict[str, Any]:
        dataset = await run_in_threadpool(
            self.datasets.find_one, {"_id": analysis["dataset_id"], "owner_id": analysis["owner_id"]}
        )
        if dataset is None:
            raise AnalysisFailed("dataset was deleted before the analysis ran")
        try:
            data = await run_in_threadpool(self.storage.get, dataset["object_key"])
        except ObjectNotFound:
            raise AnalysisFailed("dataset file is missing from storage") from None
        payload = {
            "target": analysis["target"],
            "protected_attribute": analysis["protected_attribute"],
            "positive_label": analysis["positive_label"],
            "csv": data.decode("utf-8-sig"),
        }
        return await self.call_ai_core(payload)

    async def call_ai_core(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to ai_core; retries connection failures and 502/503/504 with exponential backoff, not 4xx."""
        settings = self.settings
        url = settings.ai_core_url.rstrip("/") + "/api/v1/analyze"
        timeout = httpx.Timeout(
            settings.ai_core_timeout_seconds, connect=min(5.0, settings.ai_core_timeout_seconds)
        )
        attempts = settings.ai_core_attempts
        last = f"ai_core unreachable after {attempts} attempts"
        async with httpx.AsyncClient(timeout=timeout) as client:
            for attempt in range(1, attempts + 1):
                try:
                    response = await client.post(url, json=payload)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError):
                    last = f"ai_core unreachable after {attempts} attempts"
                except httpx.TimeoutException:
                    # The analysis may still be computing; resending it would only pile up work.
                    raise AnalysisFailed(
                        f"ai_core did not answer within {settings.ai_core_timeout_seconds:g} s"
                    ) from None
                else:
                    if response.status_code in RETRY_STATUSES:
                        last = f"ai_core answered {response.status_code} after {attempts} attempts"
                    elif response.status_code >= 400:
                        raise AnalysisFailed(
                            f"ai_core rejected the analysis ({response.status_code}): {_detail(response)}"
                        )
                    else:
                        try:
                            report = response.json()
                        except ValueError:
                            report = None
                        if not isinstance(report, dict):
                            raise AnalysisFailed("ai_core returned a report that is not a JSON object")
                        return report
                if attempt < attempts:
                    await asyncio.sleep(settings.ai_core_backoff_seconds * 2 ** (attempt - 1))
        raise AnalysisFailed(last)
