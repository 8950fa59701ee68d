"""A moto server for the whole test session: real boto3 clients talk to it over HTTP.

Import the fixture into a test module (or conftest) with
``from tests.moto_server import moto_endpoint_fixture  # noqa: F401``; tests then ask for ``moto_endpoint``
(the server's URL). ``reset_moto(url)`` empties every moto backend (call it before seeding a module's data).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

#: fake credentials and region for the session (botocore signs every request; moto accepts anything)
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata service
}


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture() -> Iterator[str]:
    """The URL of a ThreadedMotoServer on 127.0.0.1 (a free port), with fake AWS credentials in the env."""
    patch = pytest.MonkeyPatch()
    for key, value in AWS_TEST_ENV.items():
        patch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        patch.delenv(key, raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        patch.undo()


def reset_moto(url: str) -> None:
    """Forget every resource moto holds (all services, all regions)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
