"""/openapi.json documents every endpoint and its request and response bodies."""

from __future__ import annotations

from typing import Any

from .http_helpers import Api

ENDPOINTS = {
    ("post", "/reservations"),
    ("get", "/reservations"),
    ("delete", "/reservations/{reservation_id}"),
    ("post", "/reservations/check"),
    ("post", "/evses/{evse_id}/token"),
    ("post", "/evses/{evse_id}/enable"),
    ("post", "/evses/{evse_id}/reset"),
    ("post", "/evses/{evse_id}/disable"),
    ("post", "/evses/{evse_id}/limit"),
    ("get", "/status"),
    ("get", "/events"),
    ("post", "/sim/evses/{evse_id}/plug"),
    ("post", "/sim/evses/{evse_id}/unplug"),
    ("post", "/sim/faults"),
}
BODIES = {
    "/reservations": "ReservationBody",
    "/reservations/check": "ReservationCheckBody",
    "/evses/{evse_id}/token": "TokenIn",
    "/evses/{evse_id}/limit": "LimitIn",
    "/sim/faults": "SimFaultIn",
}


def resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/")
    schema: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


async def test_openapi_lists_every_endpoint_with_its_bodies(api: Api) -> None:
    reply = await api.call("GET", "/openapi.json")
    assert reply.status == 200
    spec = reply.json
    listed = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert listed == ENDPOINTS
    for path, model in BODIES.items():
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
    reservation = resolve(spec, "#/components/schemas/ReservationBody")
    assert set(reservation["properties"]) == {
        "reservation_id", "id_token", "expiry_time", "parent_id_token", "evse_id", "connector_type",
    }  # fmt: skip
    assert set(reservation["required"]) == {"reservation_id", "id_token", "expiry_time"}
    for method, path in ENDPOINTS - {("get", "/events")}:
        responses = spec["paths"][path][method]["responses"]
        ok = responses["200"]["content"]["application/json"]["schema"]["$ref"]
        assert resolve(spec, ok)["properties"], (method, path)
        assert responses["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert "text/event-stream" in spec["paths"]["/events"]["get"]["responses"]["200"]["content"]


async def test_every_schema_reference_resolves(api: Api) -> None:
    spec = (await api.call("GET", "/openapi.json")).json

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(spec):
        resolve(spec, ref)
