"""The pages: the live visualiser and the draw page get what they show over the websocket, the
runs page from /api/runs, so they render almost nothing."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from server.deps import ViewDep
from server.resources import TEMPLATES_DIR

templates = Jinja2Templates(directory=TEMPLATES_DIR)

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, title: str, view: ViewDep) -> HTMLResponse:
    context = {
        "token_required": True,
        "present": request.query_params.get("present") not in (None, "0", "false"),
        "run": view.run_dict(),
        "title": title,
    }
    return templates.TemplateResponse(request, name, context)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, view: ViewDep) -> HTMLResponse:
    return render(request, "index.html", "backprop-live", view)


@router.get("/draw", response_class=HTMLResponse)
def draw(request: Request, view: ViewDep) -> HTMLResponse:
    return render(request, "draw.html", "backprop-live: draw a digit", view)


@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request, view: ViewDep) -> HTMLResponse:
    return render(request, "runs.html", "backprop-live: runs", view)
