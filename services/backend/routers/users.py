"""The current user; deleting it removes everything it owns."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from services.backend import sessions
from services.backend.deps import UNAUTHORIZED, CurrentUser, Storage, Store
from services.backend.schemas import MeOut
from services.common.docstore import DocStore
from services.common.storage import ObjectStore

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=UNAUTHORIZED)


def dataset_prefix(user_id: str) -> str:
    return f"datasets/{user_id}/"


@router.get("/me", response_model=MeOut)
async def me(user: CurrentUser) -> MeOut:
    return MeOut(id=user["_id"], email=user["email"], created_at=user["created_at"])


def _delete_everything(store: DocStore, storage: ObjectStore, user_id: str) -> None:
    # Objects first: if this fails halfway the user still exists and can retry the delete.
    for key in storage.list(dataset_prefix(user_id)):
        storage.delete(key)
    store["analyses"].delete_many({"owner_id": user_id})
    store["datasets"].delete_many({"owner_id": user_id})
    store[sessions.COLLECTION].delete_many({"user_id": user_id})
    store["users"].delete_one({"_id": user_id})


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_me(user: CurrentUser, store: Store, storage: Storage) -> Response:
    await run_in_threadpool(_delete_everything, store, storage, user["_id"])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
