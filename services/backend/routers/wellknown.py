"""``GET /.well-known/jwks.json``: the public keys that verify access tokens (current, next, previous)."""

from __future__ import annotations

import hashlib
import json

from fastapi import APIRouter, Request, Response

from services.backend.deps import Keys, Settings

router = APIRouter(tags=["auth"])


@router.get("/.well-known/jwks.json", summary="JSON Web Key Set of the access-token signing keys")
async def jwks(keys: Keys, settings: Settings, request: Request) -> Response:
    body = json.dumps(keys.jwks, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    # Keys change at most once per refresh interval. A verifier holding an older copy that meets a
    # token with an unknown kid refetches (PyJWKClient does), so a new signing key is never refused.
    headers = {
        "Cache-Control": f"public, max-age={max(1, int(settings.secrets_refresh_seconds))}",
        "ETag": etag,
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/jwk-set+json", headers=headers)
