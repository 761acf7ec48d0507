"""Client errors as HTTP 4xx with a JSON body that names the offending field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse


def field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def validation_error(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> JSONResponse:
    details: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = tuple(
            part
            for part in (*prefix, *error["loc"])
            if part != "function-before[_quantity(), decimal]"
        )
        details.append({"field": field_path(loc), "message": error["msg"]})
    first = details[0] if details else {"field": "(body)", "message": "invalid request"}
    body = {"error": f"{first['field']}: {first['message']}", "details": details[:20]}
    return JSONResponse(body, status_code=400)


def client_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
