# backprop-live in a container: the live server on port 8000, its run saved in /data.
#   docker build -t backprop-live .
#   docker run -p 8000:8000 -v backprop-live:/data backprop-live
# The presenter link (with its token) is printed in the log; set BACKPROP_LIVE_TOKEN to fix it.
# Full MNIST: mount the four files and point BACKPROP_LIVE_DATA at them, e.g.
#   -v /path/to/mnist:/mnist:ro -e BACKPROP_LIVE_DATA=/mnist
# The first stage builds the wheel; the image installs it, as a user's pip would, and holds no
# source tree.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY server ./server
COPY templates ./templates
COPY static ./static
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 backprop \
    && mkdir /data && chown backprop:backprop /data

COPY --from=build /wheels /wheels
RUN pip install /wheels/backprop_live-*.whl

USER backprop
WORKDIR /home/backprop
VOLUME /data
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]

CMD ["backprop-live", "serve", "--host", "0.0.0.0", "--port", "8000", "--state-dir", "/data"]
