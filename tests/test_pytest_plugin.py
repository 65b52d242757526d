"""A user's own test file, using the fixtures that ``pip install clerk-sessions[testing]`` adds
to pytest (entry point ``pytest11``), passes with no set-up of its own."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

USERS_TEST_FILE = """
    import pytest


    @pytest.fixture
    def anyio_backend():
        return "asyncio"


    def test_my_sync_code(clerk_emulator, clerk_device, clerk_sync_client):
        envelope = clerk_sync_client.get_session(clerk_device.session_id)
        assert envelope.response.status == "active"
        assert clerk_emulator.requests[-1].operation == "get_session"


    @pytest.mark.anyio
    async def test_my_async_code(clerk_device, clerk_client):
        token = await clerk_client.create_session_token(clerk_device.session_id)
        assert token.jwt.count(".") == 2
"""


def test_a_users_test_file_can_use_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_users_code=textwrap.dedent(USERS_TEST_FILE))
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)
