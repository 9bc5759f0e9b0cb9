"""Evaluation tracking with the real packages: VWO's Python SDK (`gateway_service`) against the
bridge's VWO stand-in, Sentry's Python SDK (a DSN on 127.0.0.1) against its Sentry stand-in."""

import sentry_vwo_flags
from sentry_vwo_flags import track_evaluations

USER = {"id": "user-1"}


def test_an_error_after_an_evaluation_carries_the_flag_that_is_on(vwo_client, error_after):
    client = track_evaluations(vwo_client)
    results = {}
    event = error_after(lambda: results.update({"search-v2": client.get_flag("search-v2", USER).is_enabled()}))
    assert results == {"search-v2": True}
    assert event["contexts"]["flags"]["values"] == [{"flag": "search-v2", "result": True}]
    assert event["sdk"]["name"].startswith("sentry.python")


def test_a_flag_that_is_off_or_absent_from_the_settings_file_is_false(vwo_client, error_after):
    client = track_evaluations(vwo_client)
    results = {}

    def evaluate():
        for key in ("checkout-new-flow", "no-such-flag"):
            results[key] = client.get_flag(key, USER).is_enabled()

    event = error_after(evaluate)
    assert results == {"checkout-new-flow": False, "no-such-flag": False}
    assert event["contexts"]["flags"]["values"] == [
        {"flag": "checkout-new-flow", "result": False},
        {"flag": "no-such-flag", "result": False},
    ]


def test_past_100_evaluations_the_event_keeps_the_latest_100(vwo_client, error_after):
    client = track_evaluations(vwo_client)
    keys = [f"flag-{i:04d}" for i in range(120)]
    event = error_after(lambda: [client.get_flag(key, USER) for key in keys])
    flags = event["contexts"]["flags"]["values"]
    assert len(flags) == 100
    assert flags[0] == {"flag": "flag-0020", "result": True}
    assert flags[-1] == {"flag": "flag-0119", "result": True}


class _Flag:
    def __init__(self, enabled):
        self._enabled = enabled

    def is_enabled(self):
        return self._enabled


class _StagingClient:
    """A VWO client of another environment (its evaluations stubbed: the naming is what is tested)."""

    def get_flag(self, key, context):
        return _Flag(key == "search-v2")


def test_with_flag_prefix_the_flag_is_recorded_under_the_environments_name(error_after):
    staging = track_evaluations(_StagingClient(), flag_prefix="staging:")
    event = error_after(lambda: staging.get_flag("search-v2", USER))
    assert event["contexts"]["flags"]["values"] == [{"flag": "staging:search-v2", "result": True}]


def test_wrapping_twice_records_once_and_returns_the_same_flag(vwo_client, error_after):
    client = track_evaluations(track_evaluations(vwo_client))
    assert client is vwo_client
    event = error_after(lambda: client.get_flag("search-v2", USER))
    assert event["contexts"]["flags"]["values"] == [{"flag": "search-v2", "result": True}]


def test_the_openfeature_route_records_the_same_flag(vwo_client, error_after):
    """VWO's OpenFeature provider with Sentry's OpenFeature integration (no code of ours)."""
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from vwo_provider.vwo_provider import VWOProvider

    api.set_provider(VWOProvider(vwo_client))
    of_client = api.get_client()
    results = {}

    def evaluate():
        for key in ("search-v2", "checkout-new-flow"):
            results[key] = of_client.get_boolean_value(key, False, EvaluationContext(attributes={"id": "user-1"}))

    event = error_after(evaluate)
    assert results == {"search-v2": True, "checkout-new-flow": False}
    assert event["contexts"]["flags"]["values"] == [
        {"flag": "search-v2", "result": True},
        {"flag": "checkout-new-flow", "result": False},
    ]


def test_a_client_without_get_flag_is_refused():
    try:
        track_evaluations(object())
    except TypeError as error:
        assert "vwo.init()" in str(error)
    else:
        raise AssertionError("expected a TypeError")
    assert sentry_vwo_flags.__all__ == ["track_evaluations", "record_evaluation"]
