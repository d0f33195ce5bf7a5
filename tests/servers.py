"""A lyricnn server in the test process: what tests/test_serve.py and tests/test_page.py share."""
import socket
import threading

import uvicorn

from lyricnn.serve.scheduler import wait_until


class Running:
    """uvicorn serving ``app`` on a free loopback port, in a thread; ``url``, ``stop()``."""

    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        assert wait_until(lambda: self.server.started, 30)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
