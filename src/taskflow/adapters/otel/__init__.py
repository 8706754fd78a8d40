"""OpenTelemetry tracing, the optional extra ``taskflow[otel]`` (decision 28).

This module imports nothing of OpenTelemetry, so that taskflow runs without the extra: only
``open_tracing`` imports it, and only when tracing is asked for. With tracing off, no span
helper exists and the hot paths do nothing more than before.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from taskflow.adapters.otel.spans import Tracing

TracingMode = Literal["auto", "on", "off"]


def installed() -> bool:
    """True when the OpenTelemetry API and SDK (the extra) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in _EXTRA)


_EXTRA = ("opentelemetry", "opentelemetry.trace", "opentelemetry.sdk")


def open_tracing(mode: TracingMode) -> Tracing | None:
    """The span helpers of this process, or None while tracing is off.

    ``auto``: on when the application (or ``opentelemetry-instrument``) has set a tracer
    provider. ``on``: also without one: the SDK is then set up from the ``OTEL_*`` variables
    (ValueError naming the variable at fault). ``off``: never.
    """
    if mode == "off" or not installed():
        return None
    from taskflow.adapters.otel.spans import Tracing, configure_sdk, provider_configured

    if not provider_configured():
        if mode == "auto":
            return None
        configure_sdk()
    return Tracing()
