"""The stand-ins' addresses come from the workspace's test (`cargo test --test
evaluation_tracking`), which starts the bridge's VWO and Sentry stand-ins and runs this suite."""

import json
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAND_INS = ("VWO_GATEWAY_URL", "VWO_SDK_KEY", "VWO_ACCOUNT_ID", "SENTRY_DSN", "SENTRY_STANDIN_URL")


@pytest.fixture(scope="session")
def env():
    missing = [name for name in STAND_INS if not os.environ.get(name)]
    if missing:
        pytest.skip("needs the stand-ins: run `cargo test --test evaluation_tracking`")
    return os.environ


@pytest.fixture(scope="session")
def sentry(env):
    """Sentry's Python SDK sending to the Sentry stand-in, with Sentry's OpenFeature integration
    too (for the OpenFeature route); flags recorded by either land in the same context."""
    import sentry_sdk

    integrations = []
    try:
        from sentry_sdk.integrations.openfeature import OpenFeatureIntegration

        integrations.append(OpenFeatureIntegration())
    except Exception:  # DidNotEnable: an application without OpenFeature (the per-package runs)
        pass
    sentry_sdk.init(dsn=env["SENTRY_DSN"], integrations=integrations)
    yield sentry_sdk
    sentry_sdk.flush()


@pytest.fixture(scope="session")
def vwo_client(env, sentry):
    """VWO's Python SDK reading the environment's settings file from the VWO stand-in: `vwo`
    (vwo-fme-python-sdk's module), or `wingify` (wingify-fme-python-sdk's) when
    `VWO_SDK_MODULE` says so."""
    import importlib

    sdk = importlib.import_module(os.environ.get("VWO_SDK_MODULE", "vwo"))
    return sdk.init(
        {
            "sdk_key": env["VWO_SDK_KEY"],
            "account_id": env["VWO_ACCOUNT_ID"],
            "gateway_service": {"url": env["VWO_GATEWAY_URL"]},
        }
    )


@pytest.fixture
def error_after(env, sentry):
    """Runs `evaluate` in a fresh isolation scope (as per request in a server), captures an error
    there, and returns the event the Sentry stand-in received."""

    def run(evaluate):
        marker = f"evaluation-tracking {uuid.uuid4()}"
        with sentry.isolation_scope():
            evaluate()
            try:
                raise RuntimeError(marker)
            except RuntimeError:
                sentry.capture_exception()
        sentry.flush()
        for _ in range(100):
            with urllib.request.urlopen(env["SENTRY_STANDIN_URL"] + "/_stand-in/events") as answer:
                events = json.load(answer)
            for event in events:
                values = (event.get("exception") or {}).get("values") or []
                if any(v.get("value") == marker for v in values):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"the Sentry stand-in never received the event {marker!r}")

    return run


# VWO's Python SDK polls its settings with a non-daemon `threading.Timer` that it never stops (a
# server's life; `wingify_builder.check_and_poll`), so the interpreter would wait for it forever
# after the last test. End the process with pytest's own exit status once pytest is done.
def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config):
    status = config.stash.get(_EXIT_STATUS, None)
    if status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


_EXIT_STATUS = pytest.StashKey[int]()
