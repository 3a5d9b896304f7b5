"""The security tests use the integration tier's servers (a real nats-server and SeaweedFS, once per
session) and its runner for `async def` tests; unit-tier tests here simply do not ask for them."""

from tests.integration.conftest import (  # noqa: F401  (fixtures and the async-test hook, by name)
    infra_dir,
    jetstream,
    nats_server,
    nats_url,
    object_store,
    pytest_pyfunc_call,
    s3_endpoint,
    s3_server,
    uid,
)
