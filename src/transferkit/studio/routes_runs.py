"""The studio's training, live-prediction and export routes (``/api/choices``, ``/api/jobs``,
``/api/runs``); ``attach(app)`` gives the app the job runner they share."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query

from transferkit.studio.choices import training_choices

router = APIRouter()


@router.get("/api/choices")
def choices(modality: str = Query(...)) -> dict:
    """The backbones and strategies the Train panel offers for ``modality``."""
    return training_choices(modality)


def attach(app: FastAPI) -> None:
    """Set up the state these routes share on ``app`` (called by create_app after including
    ``router``)."""
