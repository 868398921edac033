"""Fixtures of the ticket tests: the ServiceNow and Jira stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from peers.jira_api import JiraCloud
from peers.servicenow import ServiceNow


@pytest.fixture
async def snow() -> AsyncIterator[ServiceNow]:
    instance = await ServiceNow().start()
    yield instance
    await instance.stop()


@pytest.fixture
async def jira() -> AsyncIterator[JiraCloud]:
    cloud = await JiraCloud().start()
    cloud.add_project("OPS", "Operations")
    yield cloud
    await cloud.stop()

