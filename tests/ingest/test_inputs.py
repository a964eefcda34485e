"""Decoding of native and server-to-server input lines."""

from __future__ import annotations

import json

import pytest

from postbackd.daemon._inputs import MAX_FUTURE_SKEW, InputError, decode_kochava, decode_native, parse_time

RECEIVED = 1_764_590_400.0  # 2025-12-01T12:00:00Z


def native(**fields) -> bytes:
    base = {"type": "install", "id": "i1", "app": "demo-app", "device": "d1", "time": 1_764_590_000}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-01T12:00:00Z", 1_764_590_400.0),
        ("2025-12-01T14:00:00+02:00", 1_764_590_400.0),
        ("2025-12-01T12:00:00.250Z", 1_764_590_400.25),
        ("1764590400", 1_764_590_400.0),
        (1_764_590_400, 1_764_590_400.0),
        (1_764_590_400.5, 1_764_590_400.5),
    ],
)
def test_parse_time_accepts(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "expected RFC 3339"),
        ("2025-12-01T12:00:00", "has no UTC offset"),
        (-5, "between 0 and year 9999"),
        (True, "expected an RFC 3339 string"),
        (float("inf"), "between 0 and year 9999"),
    ],
)
def test_parse_time_rejects(value, message):
    with pytest.raises(InputError, match=message):
        parse_time(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-12-01T12:00:00Z", 1_764_590_400.0),
        ("2025-12-01T14:00:00.5+02:00", 1_764_590_400.5),
        ("2025-12-01 12:00:00z", 1_764_590_400.0),
        ("1764590400", 1_764_590_400.0),
        (" 2025-12-01T12:00:00Z ", 1_764_590_400.0),
        (1_764_590_400, 1_764_590_400.0),
    ],
)
def test_native_time_forms(value, expected):
    assert decode_native(native(time=value), RECEIVED).time == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-12-01T12:00:00", "Invalid `time` '2025-12-01T12:00:00': the time has no UTC offset"),
        ("soon", "Invalid `time` 'soon': expected RFC 3339"),
        (True, r"got `bool` - at `\$\.time`"),
    ],
)
def test_native_time_rejects(value, message):
    with pytest.raises(InputError, match=message):
        decode_native(native(time=value), RECEIVED)


def test_native_time_error_does_not_hide_unknown_field():
    with pytest.raises(InputError, match="Unknown field 'flavour'"):
        decode_native(native(time="2025-12-01T12:00:00", flavour="red"), RECEIVED)


def test_native_install_with_attribution():
    event = decode_native(native(country="de", attribution={"network": "net1", "agency": "ag"}), RECEIVED)

    assert event.type == "install"
    assert event.country == "DE"
    assert event.attribution is not None
    assert event.attribution.network == "net1"
    assert event.attribution.agency == "ag"
    assert event.reported_time is None


def test_native_attribution_without_network_is_unattributed():
    event = decode_native(native(attribution={"campaign_id": "c1"}), RECEIVED)

    assert event.attribution is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "click"}, "Invalid `type` 'click': use one of install, reengagement, event."),
        ({"id": None}, "missing required field `id`"),
        ({"id": ""}, "Invalid `id`: it is empty"),
        ({"id": "x" * 600}, "at most 512 are allowed"),
        ({"app": None}, "missing required field `app`"),
        ({"device": 12}, "Expected `str`, got `int`"),
        ({"type": "event"}, "Missing `name`"),
        ({"type": "event", "name": "install"}, "reserved for the install postback"),
        ({"name": "Purchase"}, "only inputs of type 'event' have a name"),
        ({"type": "event", "name": "Purchase", "attribution": {"network": "n"}}, "Unexpected `attribution`"),
        ({"type": "reengagement"}, "Missing `attribution.network`"),
        ({"country": "Germany"}, "Invalid `country` 'Germany'"),
        ({"country": "ZZ"}, "Invalid `country` 'ZZ'"),
        ({"data_controlled": "yes"}, "Expected `bool`"),
        ({"flavour": "red"}, "Unknown field 'flavour'. Known fields: type, id, app"),
        ({"data_controled": True}, "Unknown field 'data_controled'. Did you mean 'data_controlled'?"),
        ({"attribution": {"network": "n", "netwrok": "m"}},
         "Unknown attribution field 'netwrok'. Did you mean 'network'?"),
    ],
)
def test_native_rejects(fields, message):
    with pytest.raises(InputError, match=message):
        decode_native(native(**fields), RECEIVED)


def test_native_rejects_malformed_json():
    with pytest.raises(InputError, match="Invalid JSON"):
        decode_native(b'{"type": "install", ', RECEIVED)


def test_native_rejects_invalid_utf8():
    with pytest.raises(InputError):
        decode_native(b'{"type": "install", "id": "\xff"}', RECEIVED)


def test_future_time_is_clamped_and_kept():
    ahead = RECEIVED + MAX_FUTURE_SKEW + 1

    event = decode_native(native(time=ahead), RECEIVED)

    assert event.time == RECEIVED
    assert event.reported_time == ahead


def test_time_within_skew_is_kept():
    ahead = RECEIVED + MAX_FUTURE_SKEW

    event = decode_native(native(time=ahead), RECEIVED)

    assert event.time == ahead
    assert event.reported_time is None


def kochava(**fields) -> bytes:
    base = {
        "action": "event", "kochava_app_id": "ko-app", "kochava_device_id": "KD1",
        "device_ids": {"idfa": "AAAA"}, "origination_ip": "192.0.2.1", "device_ua": "My%20App%2F1.0",
        "usertime": 1_764_590_000, "data": {"event_name": "Purchase", "event_data": {"sum": 1.5}},
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_kochava_event_fields():
    event = decode_kochava(kochava(), RECEIVED)

    assert event.app == "ko-app"
    assert event.device == "KD1"
    assert event.name == "Purchase"
    assert event.user_agent == "My App/1.0"
    assert event.device_ids == {"idfa": "AAAA"}
    assert event.ip == "192.0.2.1"
    assert event.data == {"sum": 1.5}
    assert event.source == "kochava"
    assert event.attribution is None
    assert event.country is None


def test_kochava_device_fields_inside_data():
    line = kochava(device_ids=None, origination_ip=None, device_ua=None, usertime=None, data={
        "event_name": "Level Complete", "device_ids": {"idfv": "BBBB"}, "origination_ip": "192.0.2.9",
        "usertime": 1_764_590_100, "event_data": {"level": 3},
    })

    event = decode_kochava(line, RECEIVED)

    assert event.device_ids == {"idfv": "BBBB"}
    assert event.ip == "192.0.2.9"
    assert event.time == 1_764_590_100
    assert event.name == "Level Complete"


def test_kochava_id_is_stable_and_content_based():
    first = decode_kochava(kochava(), RECEIVED)
    reordered = json.dumps(dict(reversed(list(json.loads(kochava()).items())))).encode()

    assert decode_kochava(kochava(), RECEIVED + 50).id == first.id
    assert decode_kochava(reordered, RECEIVED).id == first.id
    assert decode_kochava(kochava(usertime=1_764_590_001), RECEIVED).id != first.id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "open"}, "Invalid `action` 'open': use one of install, event."),
        ({"kochava_app_id": None}, "missing required field `kochava_app_id`"),
        ({"usertime": None}, "Missing `usertime`"),
        ({"data": {}}, "Missing `data.event_name`"),
        ({"data": {"event_name": "install"}}, "reserved for the install postback"),
        ({"usertime": "soon"}, "Invalid `usertime` 'soon'"),
    ],
)
def test_kochava_rejects(fields, message):
    with pytest.raises(InputError, match=message):
        decode_kochava(kochava(**fields), RECEIVED)
