"""What the presenter shows that every web process must show, when several follow one trainer
through Redis (``serve --redis``): the explain walk-through's frames and the traces they name.

The process that the presenter's request reaches publishes the frame; every process (itself
included) hears it and hands it to its broadcaster, and the latest one is kept for processes
that start later. A trace is kept in Redis for an hour under its key, so that a viewer on any
process fetches the one the presenter's process computed (GET /api/explain/{key}).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Any

import redis

from server.broadcast import Broadcaster
from server.frames import ExplainFrame
from server.trainer import streams
from server.trainer.protocol import TrainerUnavailable

log = logging.getLogger(__name__)

EXPLAIN = streams.PREFIX + "explain"  # the channel, and the key of the latest frame
TRACE = streams.PREFIX + "trace:"
TRACE_SECONDS = 3600


class SharedFrames:
    def __init__(self, url: str, broadcaster: Broadcaster) -> None:
        self.url = url
        self.broadcaster = broadcaster
        self.redis = streams.connect(url)
        self.closing = False
        self.thread = threading.Thread(target=self._listen, name="shared frames", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.closing = True
        self.redis.close()

    def publish_explain(self, frame: ExplainFrame) -> None:
        """Show ``frame`` on every web process (raises redis.RedisError if Redis is away)."""
        text = json.dumps(frame)
        pipeline = self.redis.pipeline()
        pipeline.set(EXPLAIN, text)
        pipeline.publish(EXPLAIN, text)
        try:
            pipeline.execute()
        except redis.RedisError as error:
            raise TrainerUnavailable("redis is unreachable; try again in a moment") from error

    def keep_trace(self, key: str, text: str) -> None:
        try:
            self.redis.set(TRACE + key, text, ex=TRACE_SECONDS)
        except redis.RedisError as error:  # viewers elsewhere then compute it themselves
            log.warning("could not share an explain trace (%s)", error)

    def find_trace(self, key: str) -> str | None:
        try:
            text: Any = self.redis.get(TRACE + key)
        except redis.RedisError:
            return None
        return None if text is None else str(text.decode())

    def _listen(self) -> None:
        while not self.closing:
            with contextlib.suppress(EOFError):
                streams.retrying("following the presenter's frames", self._follow, self._stop)

    def _stop(self) -> bool:
        return self.closing

    def _follow(self) -> None:
        connection = streams.connect(self.url)
        subscription = connection.pubsub(ignore_subscribe_messages=True)
        try:
            subscription.subscribe(EXPLAIN)
            latest: Any = connection.get(EXPLAIN)  # after subscribing: nothing falls between
            if latest is not None:
                self.broadcaster.take_explain(json.loads(latest))
            while not self.closing:
                message = subscription.get_message(timeout=1.0)
                if message is not None:
                    self.broadcaster.take_explain(json.loads(message["data"]))
        finally:  # a lost connection goes up to retrying(), which says so and tries again
            with contextlib.suppress(redis.RedisError):
                subscription.close()
            connection.close()
