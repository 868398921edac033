"""Calendar tests run on a database migrated once per worker (tests/migrated.py); the push tests
against the Google Calendar and Graph stand-ins, which accept :data:`~calendars.push_support.TOKEN`."""

from collections.abc import AsyncIterator

import pytest
from calendars.push_support import TOKEN
from peers.google_calendar import GoogleCalendarAPI
from peers.graph_calendar import GraphCalendarAPI


@pytest.fixture
async def gcal() -> AsyncIterator[GoogleCalendarAPI]:
    api = GoogleCalendarAPI(tokens={TOKEN})
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def graph() -> AsyncIterator[GraphCalendarAPI]:
    api = GraphCalendarAPI(tokens={TOKEN})
    await api.start()
    yield api
    await api.stop()
