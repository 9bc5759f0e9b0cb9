"""Evaluation tracking for VWO's Python SDK.

Every ``get_flag`` result is recorded in the Sentry SDK's feature-flag context under the flag's
key, so error events carry ``contexts.flags.values = [{"flag", "result"}]`` and Sentry can show
the flag on the issue and name it as a suspect when change tracking reports a change to it.

Sentry's side: ``sentry_sdk.feature_flags.add_feature_flag(flag, result)`` (sentry-sdk 2.x,
getsentry/sentry-python ``sentry_sdk/feature_flags.py``; the 100 most recent are kept).
VWO's side: ``get_flag(key, context)`` returns a flag whose ``is_enabled()`` is the result
(vwo-fme-python-sdk ``get_flag_api.py``); a flag absent from the settings file is ``False``.
"""

from functools import wraps

from sentry_sdk.feature_flags import add_feature_flag

__all__ = ["track_evaluations", "record_evaluation"]

_TRACKED = "_sentry_vwo_flags_tracked"


def record_evaluation(feature_key, enabled):
    """Records one evaluation in the current Sentry scope."""
    add_feature_flag(str(feature_key), enabled is True)


def track_evaluations(vwo_client, flag_prefix=""):
    """Makes ``vwo_client.get_flag`` record each result in Sentry; returns the client.

    Evaluation itself is untouched: the same flag object comes back, and an evaluation that
    raises records nothing. Calling it twice on one client records once. ``flag_prefix`` is put
    before each flag's key in Sentry (``"staging:"`` → ``staging:search-v2``): the same as change
    tracking's ``flagPrefix`` for this VWO environment (none by default).
    """
    get_flag = getattr(vwo_client, "get_flag", None)
    if not callable(get_flag):
        raise TypeError("track_evaluations expects the client returned by vwo.init()")
    if getattr(vwo_client, _TRACKED, False):
        return vwo_client

    @wraps(get_flag)
    def get_flag_tracked(feature_key, context, *args, **kwargs):
        flag = get_flag(feature_key, context, *args, **kwargs)
        is_enabled = getattr(flag, "is_enabled", None)
        if callable(is_enabled):
            record_evaluation(f"{flag_prefix}{feature_key}", is_enabled())
        return flag

    vwo_client.get_flag = get_flag_tracked
    setattr(vwo_client, _TRACKED, True)
    return vwo_client
