from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health() -> dict[str, str]:
    """Answers as soon as the server can serve: what container health checks poll."""
    return {"status": "ok"}
