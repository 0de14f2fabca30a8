"""CSV datasets: the file goes to object storage, its summary to the document store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, HTTPException, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from services.backend.csvcheck import CsvInvalid, CsvTooLarge, inspect_csv
from services.backend.deps import UNAUTHORIZED, CurrentUser, Settings, Storage, Store, owned
from services.backend.pagination import DEFAULT_LIMIT, Cursor, Limit, page
from services.backend.routers.users import dataset_prefix
from services.backend.runner import now_iso
from services.backend.schemas import DatasetOut, DatasetPage, InvalidInput, Problem
from services.common.docstore import new_id

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"], responses=UNAUTHORIZED)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such dataset of yours"}
}
_CHUNK = 1024 * 1024


def to_out(doc: dict[str, Any]) -> DatasetOut:
    return DatasetOut(
        id=doc["_id"],
        filename=doc["filename"],
        rows=doc["rows"],
        columns=doc["columns"],
        size_bytes=doc["size_bytes"],
        created_at=doc["created_at"],
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses={
        413: {"model": Problem, "description": "File, rows or columns over the limits"},
        422: {"model": InvalidInput, "description": "Not a valid CSV file"},
    },
)
async def upload(
    user: CurrentUser, settings: Settings, store: Store, storage: Storage, file: UploadFile = File(...)
) -> DatasetOut:
    limit = settings.max_upload_bytes
    data = bytearray()
    while chunk := await file.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"file exceeds the limit of {limit} bytes"
            )
    try:
        summary = await run_in_threadpool(
            inspect_csv, bytes(data), max_rows=settings.max_rows, max_columns=settings.max_columns
        )
    except CsvTooLarge as exc:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, str(exc)) from None
    except CsvInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid CSV: {exc}") from None
    dataset_id = new_id()
    key = f"{dataset_prefix(user['_id'])}{dataset_id}.csv"
    generation = await run_in_threadpool(storage.put, key, bytes(data), if_generation_match=0)
    doc = {
        "_id": dataset_id,
        "owner_id": user["_id"],
        "filename": (file.filename or "dataset.csv")[:255],
        "rows": summary.rows,
        "columns": summary.columns,
        "size_bytes": len(data),
        "created_at": now_iso(),
        "object_key": key,
        "generation": generation,
    }
    await run_in_threadpool(store["datasets"].insert_one, doc)
    return to_out(doc)


# Served by the index on (owner_id, created_at, _id) declared in services/backend/app.py.
LIST_ORDER = [("created_at", 1), ("_id", 1)]


@router.get(
    "",
    response_model=DatasetPage,
    responses={422: {"model": InvalidInput, "description": "Bad limit or cursor"}},
)
async def list_datasets(
    user: CurrentUser, store: Store, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> DatasetPage:
    """Your datasets, oldest first, one page at a time."""
    docs, next_cursor = await run_in_threadpool(
        page, store["datasets"], {"owner_id": user["_id"]}, LIST_ORDER, limit, cursor
    )
    return DatasetPage(items=[to_out(doc) for doc in docs], next_cursor=next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=NOT_FOUND)
async def get_dataset(dataset_id: str, user: CurrentUser, store: Store) -> DatasetOut:
    return to_out(await run_in_threadpool(owned, store, "datasets", dataset_id, user["_id"]))


@router.delete(
    "/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=NOT_FOUND
)
async def delete_dataset(dataset_id: str, user: CurrentUser, store: Store, storage: Storage) -> Response:
    doc = await run_in_threadpool(owned, store, "datasets", dataset_id, user["_id"])
    await run_in_threadpool(storage.delete, doc["object_key"])
    await run_in_threadpool(store["datasets"].delete_one, {"_id": dataset_id, "owner_id": user["_id"]})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
