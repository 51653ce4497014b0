"""The JSON the server answers with, as pydantic models: they make the OpenAPI schema that
clients (and schemathesis) read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class UnreadableInput(BaseModel):
    input: str = Field(description="the upload's file name")
    reason: str = Field(description="why it cannot be read")


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="machine-readable, e.g. body_too_large, unreadable_input")
    message: str = Field(description="what was wrong and how to fix it")
    inputs: list[UnreadableInput] | None = Field(
        default=None, description="for unreadable_input: each unreadable upload and why"
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class InputSpec(BaseModel):
    content_type: str = Field(description="the Content-Type a predict request must have")
    field: str = Field(description="the multipart field of each file, or the JSON key")
    example: str


class ModelInfo(BaseModel):
    name: str
    format: str = Field(description="bundle (transferkit train) or exported (ONNX)")
    modality: str
    labels: list[str]
    backbone: str | None = None
    weights_sha256: str | None = None
    strategy: str | None = None
    head: str | None = None
    metrics: dict[str, Any] | None = None
    manifest_sha256: str | None = None
    input: InputSpec
    adapter: dict[str, Any] | None = Field(
        None, description="an adapter bundle's adapter (method and config) in its backbone"
    )
    shares_backbone_with: list[str] = Field(
        description="other served models whose backbone weights are the same in memory: one "
        "frozen backbone, or adapter bundles on one base"
    )


class ModelList(BaseModel):
    models: list[ModelInfo]


class Prediction(BaseModel):
    input: str = Field(description="the upload's file name, or the text itself")
    label: str
    confidence: float
    scores: dict[str, float] = Field(description="the top classes and their probabilities")


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction] = Field(description="one per input, in the order sent")


class Health(BaseModel):
    status: str
    models: list[str]


def texts_schema(max_inputs: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "texts": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "pattern": r"\S"},
                "minItems": 1,
                "maxItems": max_inputs,
            }
        },
        "required": ["texts"],
        "additionalProperties": False,
    }


def files_schema(max_inputs: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "minItems": 1,
                "maxItems": max_inputs,
            }
        },
        "required": ["files"],
        "additionalProperties": False,
    }
