"""The two pages; what they show comes over the websocket, so they render almost nothing."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import TemplateNotFound

from server.deps import ViewDep

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, title: str, view: ViewDep) -> HTMLResponse:
    context = {
        "token_required": True,
        "present": request.query_params.get("present") not in (None, "0", "false"),
        "run": view.run_dict(),
        "title": title,
    }
    try:
        return templates.TemplateResponse(request, name, context)
    except TemplateNotFound:
        return HTMLResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1>")


@router.get("/", response_class=HTMLResponse)
def index(request: Request, view: ViewDep) -> HTMLResponse:
    return render(request, "index.html", "backprop-live", view)


@router.get("/draw", response_class=HTMLResponse)
def draw(request: Request, view: ViewDep) -> HTMLResponse:
    return render(request, "draw.html", "backprop-live: draw a digit", view)
