"""Client errors as HTTP 4xx with a JSON body that names the offending field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse


def field_path(loc: Sequence[int | str]) -> str:
    # pydantic names a validator step in the path (e.g. "function-before[...]"): drop it.
    return ".".join(str(part) for part in loc if "[" not in str(part)) or "(body)"


def validation_error(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> JSONResponse:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return validation_errors(errors, prefix)


def validation_errors(
    errors: Sequence[Mapping[str, Any]], prefix: tuple[int | str, ...] = ()
) -> JSONResponse:
    """400 with every problem by field path, the first one in ``error``."""
    details = [
        {"field": field_path((*prefix, *error["loc"])), "message": str(error["msg"])}
        for error in errors
    ]
    first = details[0] if details else {"field": "(body)", "message": "invalid request"}
    body = {"error": f"{first['field']}: {first['message']}", "details": details[:20]}
    return JSONResponse(body, status_code=400)


def client_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
