from collections.abc import Callable

import httpx

from tests.integration.conftest import ServerProcess


def test_serve_answers_probes(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    server.wait_ready()
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
