"""Silences over the API: create, list, end; matching messages are suppressed meanwhile."""

from __future__ import annotations

from typing import Any

from test_api import assert_error

SILENCES = "/api/v1/silences"
MESSAGES = "/api/v1/messages"


async def statuses(api: Any, labels: dict[str, str]) -> list[str]:
    r = await api.post(MESSAGES, json={"title": "disk full", "labels": labels})
    assert r.status_code == 202, r.text
    return [d["status"] for d in r.json()["deliveries"]]


async def test_a_silence_suppresses_matching_messages_until_it_ends(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    r = await api.post(SILENCES, json={"matchers": {"alertname": "DiskFull", "instance": "web-01"},
                                       "duration": "2h", "reason": "disk being replaced"})
    assert r.status_code == 201, r.text
    silence = r.json()
    assert silence["matchers"] == {"alertname": "DiskFull", "instance": "web-01"}
    assert 7190 < silence["until"] - silence["created_at"] <= 7200
    assert silence["created_by"] == "api" and silence["reason"] == "disk being replaced"

    listed = (await api.get(SILENCES)).json()["items"]
    assert [s["id"] for s in listed] == [silence["id"]]

    assert await statuses(api, {"alertname": "DiskFull", "instance": "web-01", "env": "prod"}) == ["suppressed"]
    r = await api.post(MESSAGES, json={"title": "disk full", "labels": {"alertname": "DiskFull", "instance": "web-01"}})
    stored = (await api.get(f"{MESSAGES}/{r.json()['id']}")).json()
    assert stored["deliveries"][0]["last_error"] == (
        f"silenced by silence {silence['id']} (alertname=DiskFull,instance=web-01)"
    ), "a suppressed delivery says which silence held it"
    assert await statuses(api, {"alertname": "DiskFull", "instance": "web-02"}) == ["pending"], "all matchers must match"
    assert await statuses(api, {"alertname": "DiskFull"}) == ["pending"]

    ended = await api.request("DELETE", f"{SILENCES}/{silence['id'][:13]}")  # a unique start of the id
    assert ended.status_code == 200 and ended.json()["id"] == silence["id"]
    assert (await api.get(SILENCES)).json()["items"] == []
    ended_list = (await api.get(SILENCES, params={"state": "ended"})).json()["items"]
    assert [s["id"] for s in ended_list] == [silence["id"]] and ended_list[0]["until"] <= ended.json()["until"] + 1
    assert await statuses(api, {"alertname": "DiskFull", "instance": "web-01"}) == ["pending"]
    assert_error(await api.request("DELETE", f"{SILENCES}/{silence['id']}"), 404, "not found")


async def test_invalid_silences_are_422_with_the_reason(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    cases = [
        ({"matchers": {"service": "api"}, "duration": "2"}, "not a duration"),
        ({"matchers": {"service": "api"}, "duration": "31d"}, "at most 30d"),
        ({"matchers": {"service": "api"}, "duration": "0s"}, "longer than 0s"),
        ({"matchers": {"bad name": "x"}, "duration": "1h"}, "not a label name"),
        ({"matchers": {"service": ""}, "duration": "1h"}, "give the value"),
    ]
    for body, reason in cases:
        detail = assert_error(await api.post(SILENCES, json=body), 422, "invalid silence")
        assert reason in detail, (body, detail)
    assert_error(await api.post(SILENCES, json={"matchers": {}, "duration": "1h"}), 422)
    assert_error(await api.post(SILENCES, json={"duration": "1h"}), 422)
    assert (await api.get(SILENCES)).json()["items"] == []
    assert_error(await api.get(SILENCES, auth=False), 401)


async def test_ended_silences_are_listed_most_recently_ended_first(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    made = []
    for n in range(3):
        r = await api.post(SILENCES, json={"matchers": {"job": f"j{n}"}, "duration": "1h"})
        made.append(r.json()["id"])
    for sid in made[:2]:
        assert (await api.request("DELETE", f"{SILENCES}/{sid}")).status_code == 200
    ended = (await api.get(SILENCES, params={"state": "ended"})).json()["items"]
    assert [s["id"] for s in ended] == made[:2][::-1]
    assert [s["id"] for s in (await api.get(SILENCES, params={"state": "ended", "limit": 1})).json()["items"]] == [made[1]]
    assert [s["id"] for s in (await api.get(SILENCES)).json()["items"]] == [made[2]]
    assert_error(await api.get(SILENCES, params={"state": "gone"}), 422)
