"""Reading a predict request's inputs: JSON texts for a model that takes texts as themselves,
multipart file uploads otherwise (the modality says which), each refused with a clear 4xx."""

from __future__ import annotations

import json

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from transferkit.serve.errors import ApiError
from transferkit.serve.limits import Limits
from transferkit.serve.models import ServedModel
from transferkit.serve.schemas import InputSpec

JSON = "application/json"
MULTIPART = "multipart/form-data"
FILES_FIELD = "files"
TEXTS_KEY = "texts"
_MAX_FORM_FIELDS = 16  # a predict form holds files only; a few stray fields are refused by name


def input_spec(model: ServedModel) -> InputSpec:
    """How a client sends inputs to ``model``."""
    if model.modality.inline_inputs:
        example = '{"texts": ["first text", "second text"]}'
        return InputSpec(content_type=JSON, field=TEXTS_KEY, example=example)
    noun = model.modality.noun.replace(" ", "_")
    example = f"curl -F files=@{noun}1 -F files=@{noun}2 .../v1/models/{model.name}/predict"
    return InputSpec(content_type=MULTIPART, field=FILES_FIELD, example=example)


async def read_inputs(request: Request, model: ServedModel, limits: Limits) -> list:
    """The request's inputs: texts (str) or uploads (file name, bytes), in the order sent."""
    spec = input_spec(model)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != spec.content_type:
        what = "texts" if model.modality.inline_inputs else f"{model.modality.noun}s"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{model.name} classifies {what}: send Content-Type {spec.content_type} "
            f"(got {media or 'none'}), e.g. {spec.example}",
        )
    if model.modality.inline_inputs:
        inputs = _texts(await request.body())
    else:
        inputs = await _uploads(request, limits)
    if not inputs:
        where = f"'{TEXTS_KEY}'" if model.modality.inline_inputs else f"'{FILES_FIELD}' parts"
        raise ApiError(422, "empty_batch", f"nothing to predict: {where} holds no inputs")
    if len(inputs) > limits.max_inputs:
        raise _too_many(len(inputs), limits)
    return inputs


def _too_many(n: int | None, limits: Limits) -> ApiError:
    got = f"{n} were sent" if n is not None else "more were sent"
    return ApiError(
        413,
        "too_many_inputs",
        f"a request may hold at most {limits.max_inputs} inputs and {got}; split them over "
        "several requests (the limit is `transferkit serve --max-inputs`)",
    )


def _texts(body: bytes) -> list[str]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or TEXTS_KEY not in payload:
        raise ApiError(
            422,
            "invalid_json",
            f'send a JSON object {{"{TEXTS_KEY}": ["a text", ...]}}; got {_shape(payload)}',
        )
    extra = sorted(set(payload) - {TEXTS_KEY})
    if extra:
        raise ApiError(
            422, "invalid_json", f"unknown keys {extra}; the body holds '{TEXTS_KEY}' only"
        )
    texts = payload[TEXTS_KEY]
    if not isinstance(texts, list):
        raise ApiError(422, "invalid_json", f"'{TEXTS_KEY}' must be a list of strings")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(
                422, "invalid_json", f"{TEXTS_KEY}[{i}] is a {_shape(text)}, not a string"
            )
        if not text.strip():
            raise ApiError(
                422, "empty_text", f"{TEXTS_KEY}[{i}] is empty; give the text to classify"
            )
    return texts


def _shape(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


async def _uploads(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    try:
        form = await request.form(max_files=limits.max_inputs, max_fields=_MAX_FORM_FIELDS)
    except ApiError:
        raise  # the body limits, raised while the form was read
    except HTTPException as exc:
        # Starlette refuses a form over max_files with a 400; it is our limit on inputs
        if str(exc.detail).startswith("Too many files"):
            raise _too_many(None, limits) from None
        raise ApiError(
            400, "bad_multipart", f"the multipart body cannot be parsed ({exc.detail})"
        ) from None
    try:
        uploads = []
        for key, value in form.multi_items():
            if key != FILES_FIELD:
                raise ApiError(
                    422,
                    "unexpected_field",
                    f"unexpected form field '{key}'; send each file as a part named "
                    f"'{FILES_FIELD}'",
                )
            if not isinstance(value, UploadFile):
                raise ApiError(
                    422,
                    "not_a_file",
                    f"a '{FILES_FIELD}' part holds a plain value, not a file; send files "
                    f"(curl -F {FILES_FIELD}=@photo.jpg)",
                )
            uploads.append((value.filename or "upload", await value.read()))
        return uploads
    finally:
        await form.close()
