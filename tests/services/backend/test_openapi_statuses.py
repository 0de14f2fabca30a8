"""The OpenAPI document lists the 400s Starlette answers for unparsable bodies and the 429s of the rate
limiter, and the answers really are those statuses (issue #8, item 10)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import register_and_login


def test_unparsable_bodies_get_the_documented_400(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    headers = register_and_login(client)
    # Bytes that are not text at all: FastAPI gives up before JSON decoding ("error parsing the body").
    broken_json = client.post(
        "/api/v1/auth/login", content=b"\x80\x81{", headers={"Content-Type": "application/json"}
    )
    broken_multipart = client.post(
        "/api/v1/datasets",
        content=b"--xyz\r\nbad header line\r\n\r\nx\r\n--xyz--\r\n",  # a part header with no colon
        headers={**headers, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken_json.status_code == 400 and broken_multipart.status_code == 400
    for path, method in [("/api/v1/auth/login", "post"), ("/api/v1/datasets", "post")]:
        assert "400" in document["paths"][path][method]["responses"], path
    assert "400" not in document["paths"]["/api/v1/users/me"]["get"]["responses"]


def test_every_api_operation_documents_429_and_probes_do_not(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert ("429" in operation["responses"]) == path.startswith("/api/"), (method, path)


def test_405_allow_lists_the_documented_methods(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    answer = client.put("/api/v1/users/me")
    assert answer.status_code == 405
    allowed = {method.strip().lower() for method in answer.headers["allow"].split(",")}
    assert allowed == set(paths["/api/v1/users/me"])
