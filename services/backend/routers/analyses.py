"""Fairness analyses: accepted with 202, computed in the background by ai_core."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from services.backend.deps import UNAUTHORIZED, CurrentUser, Runner, Store, owned
from services.backend.runner import now_iso
from services.backend.schemas import AnalysisIn, AnalysisOut, InvalidInput, Problem, Report
from services.common.docstore import new_id

router = APIRouter(prefix="/api/v1/analyses", tags=["analyses"], responses=UNAUTHORIZED)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such analysis of yours"}
}


def to_out(doc: dict[str, Any]) -> AnalysisOut:
    return AnalysisOut(
        id=doc["_id"],
        dataset_id=doc["dataset_id"],
        target=doc["target"],
        protected_attribute=doc["protected_attribute"],
        positive_label=doc["positive_label"],
        status=doc["status"],
        error=doc.get("error"),
        created_at=doc["created_at"],
        finished_at=doc.get("finished_at"),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisOut,
    responses={
        404: {"model": Problem, "description": "No such dataset of yours"},
        422: {"model": InvalidInput, "description": "Invalid body, or columns the dataset lacks"},
    },
)
async def create_analysis(body: AnalysisIn, user: CurrentUser, store: Store, runner: Runner) -> AnalysisOut:
    dataset = await run_in_threadpool(owned, store, "datasets", body.dataset_id, user["_id"])
    missing = [c for c in (body.target, body.protected_attribute) if c not in dataset["columns"]]
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"dataset has no column {', '.join(map(repr, missing))}; "
            f"its columns: {', '.join(dataset['columns'])}",
        )
    if body.target == body.protected_attribute:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "target and protected_attribute must differ"
        )
    doc = {
        "_id": new_id(),
        "owner_id": user["_id"],
        **body.model_dump(),
        "status": "queued",
        "error": None,
        "created_at": now_iso(),
        "finished_at": None,
        "heartbeat_at": time.time(),
    }
    await run_in_threadpool(store["analyses"].insert_one, doc)
    runner.submit(doc["_id"])
    return to_out(doc)


@router.get("/{analysis_id}", response_model=AnalysisOut, responses=NOT_FOUND)
async def get_analysis(analysis_id: str, user: CurrentUser, store: Store) -> AnalysisOut:
    return to_out(await run_in_threadpool(owned, store, "analyses", analysis_id, user["_id"]))


@router.get(
    "/{analysis_id}/report",
    response_model=Report,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "The analysis has not succeeded (yet)"}},
)
async def get_report(analysis_id: str, user: CurrentUser, store: Store) -> Report:
    doc = await run_in_threadpool(owned, store, "analyses", analysis_id, user["_id"])
    if doc["status"] != "succeeded":
        detail = f"analysis is {doc['status']}" + (f": {doc['error']}" if doc.get("error") else "")
        raise HTTPException(status.HTTP_409_CONFLICT, detail)
    report: Report = doc["report"]
    return report
