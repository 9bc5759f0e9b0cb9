"""A one-request application using the integration, as `bridge try` runs it: it evaluates a flag
for a user with VWO's Python SDK and, when the flag is on, hits an error that its Sentry SDK
captures; the error event carries the evaluation (`contexts.flags`).

Configured by the environment: VWO_GATEWAY_URL, VWO_SDK_KEY, VWO_ACCOUNT_ID, SENTRY_DSN, FLAG and
RUN (a word that makes this run's error, and so its issue, its own). Prints one JSON line.
"""

import json
import os
import sys

import sentry_sdk
import vwo

from sentry_vwo_flags import track_evaluations


class SearchIndexError(RuntimeError):
    """What the new code path fails with."""


def search(query, flag_on, run):
    if flag_on:
        raise SearchIndexError(f"search-v2 index has no shard for {query!r} ({run})")
    return []


def main():
    env = os.environ
    sentry_sdk.init(dsn=env["SENTRY_DSN"], release="shop@2.14.0", environment="production")
    client = track_evaluations(
        vwo.init(
            {
                "sdk_key": env["VWO_SDK_KEY"],
                "account_id": env["VWO_ACCOUNT_ID"],
                "gateway_service": {"url": env["VWO_GATEWAY_URL"]},
            }
        )
    )
    flag = env.get("FLAG", "search-v2")
    enabled = client.get_flag(flag, {"id": "user-42"}).is_enabled()
    error = None
    try:
        search("running shoes", enabled, env.get("RUN", "local"))
    except SearchIndexError as e:
        error = str(e)
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
    print(json.dumps({"flag": flag, "enabled": enabled, "error": error}), flush=True)


if __name__ == "__main__":
    main()
    # VWO's SDK polls its settings on a non-daemon thread it never stops: a one-shot run ends here.
    sys.stderr.flush()
    os._exit(0)
