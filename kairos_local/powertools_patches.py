"""Local-only fixes to Powertools for functions running at once in one process, in force inside ``embedded_aws``.

Powertools assumes what Lambda gives it: one invocation at a time per process. The local runtime runs several, on
their callers' threads (:class:`kairos_local.runtime.LocalRuntime`), and two pieces of Powertools state are
process-wide:

- the event handler keeps the event and context being resolved on the ``BaseRouter`` class
  (``BaseRouter.current_event = ...`` in ``ApiGatewayResolver.resolve``), so the API resolving a request while the
  preferences function resolves another would answer with each other's events. Here both attributes are per
  invocation (a context variable: each caller's thread has its own).
- ``Metrics`` instances share one metric set; an invocation adding a metric while another's ``log_metrics``
  serializes or clears the set would fail with "dictionary changed size during iteration". Here the provider's
  methods that read or change the set take one lock.
- ``Logger.inject_lambda_context`` appends the invocation's keys (function name, request id, cold start) to the
  one formatter every function shares, so a line of one function would carry another's name. Here the keys go to
  the caller's context, as ``thread_safe_append_keys`` puts them.

Nothing here runs in Lambda; outside the context Powertools is exactly as installed.
"""

from __future__ import annotations

import functools
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from kairos_local.nested_patch import NestedPatch

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

_ROUTER_STATE = ("current_event", "lambda_context")
_METRIC_SET_METHODS = (
    "add_metric",
    "add_dimension",
    "add_metadata",
    "serialize_metric_set",
    "flush_metrics",
    "clear_metrics",
)
_ABSENT = object()


class _PerInvocation:
    """A data descriptor whose value belongs to the context that set it, read and set on the class or an instance."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value: ContextVar[Any] = ContextVar(f"powertools_{name}")

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        try:
            return self.value.get()
        except LookupError:
            raise AttributeError(f"no {self.name} in this invocation") from None

    def __set__(self, obj: Any, value: Any) -> None:
        self.value.set(value)


_saved: dict[str, Any] = {}


def _apply() -> None:
    # Imported here, not with this module: the logger reads its level from the environment embedded_aws sets.
    from kairos.core.observability import logger, metrics

    slots = {name: _PerInvocation(name) for name in _ROUTER_STATE}
    for name, slot in slots.items():
        _saved[name] = BaseRouter.__dict__.get(name, _ABSENT)
        # In the class, for reads and writes through an instance (``app.current_event``)...
        type.__setattr__(BaseRouter, name, slot)
    # ...and in its metaclass, for those through the class itself (``BaseRouter.current_event = ...``), which would
    # otherwise replace the descriptor with a value.
    _saved["__class__"] = type(BaseRouter)
    BaseRouter.__class__ = type("PerInvocationRouterState", (type(BaseRouter),), dict(slots))
    provider = metrics.provider
    lock = threading.RLock()
    for name in _METRIC_SET_METHODS:
        setattr(provider, name, _locked(lock, getattr(provider, name)))
    logger.append_keys = logger.thread_safe_append_keys  # type: ignore[method-assign]


def _undo() -> None:
    from kairos.core.observability import logger, metrics

    BaseRouter.__class__ = _saved.pop("__class__")
    for name in _ROUTER_STATE:
        type.__delattr__(BaseRouter, name)
        value = _saved.pop(name)
        if value is not _ABSENT:
            type.__setattr__(BaseRouter, name, value)
    for name in _METRIC_SET_METHODS:
        vars(metrics.provider).pop(name, None)  # the class's own method again
    vars(logger).pop("append_keys", None)


def _locked(lock: threading.RLock, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return call


_nested = NestedPatch(_apply, _undo)


def patched() -> AbstractContextManager[None]:
    """Apply the fixes for the duration of the context; nested contexts share them, the outermost undoes them."""
    return _nested()


def active() -> bool:
    """Whether the fixes are in force now."""
    return isinstance(BaseRouter.__dict__.get("current_event"), _PerInvocation)
