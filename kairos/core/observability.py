"""The one place that owns the logger, tracer and metrics of every Kairos function.

The tracer costs nothing at import. Powertools' ``Tracer`` imports the X-Ray SDK when it is made, even disabled,
and patches every library the SDK knows (requests, sqlite3, …, importing each): about a quarter of a function's
cold start. Here it is made on the first traced invocation, only when tracing is on (Lambda, not
``POWERTOOLS_TRACE_DISABLED``), and it patches only what Kairos calls: botocore (every AWS call) and http.client
(the Telegram provider's requests). A function that never traces (the authorizer) never loads the SDK.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools import Tracer

SERVICE = "kairos"
# The X-Ray SDK's patch names of the libraries Kairos makes calls with.
TRACED_MODULES = ("botocore", "httplib")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Kairos", service=SERVICE)


def tracing_enabled() -> bool:
    """Whether a Tracer would trace here: in Lambda (``LAMBDA_TASK_ROOT``), not under SAM local or Chalice, and not
    turned off with ``POWERTOOLS_TRACE_DISABLED`` (Powertools' own rules, read without importing the SDK)."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))
    return in_lambda and not os.getenv(constants.SAM_LOCAL_ENV) and not os.getenv(constants.CHALICE_LOCAL_ENV)


class LazyTracer:
    """Powertools' ``Tracer``, made on the first traced invocation (see the module's docstring).

    Parameters
    ----------
    service
        The service name of the traces.

    Example
    -------
    >>> @tracer.capture_lambda_handler
    ... def lambda_handler(event, context): ...
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._tracer: Tracer | None = None

    @property
    def tracer(self) -> Tracer:
        """The Powertools tracer, made (and the SDK imported and patched in) on first use."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer(service=self.service, patch_modules=TRACED_MODULES)
        return self._tracer

    def capture_lambda_handler(
        self, lambda_handler: Callable[..., Any] | None = None, **options: Any
    ) -> Callable[..., Any]:
        """``Tracer.capture_lambda_handler``, with the tracer made on the handler's first call; without tracing,
        the handler itself is called."""
        if lambda_handler is None:
            return functools.partial(self.capture_lambda_handler, **options)
        handler = lambda_handler
        traced: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def decorate(event: Any, context: Any, **kwargs: Any) -> Any:
            if not traced:
                traced.append(self.tracer.capture_lambda_handler(handler, **options) if tracing_enabled() else handler)
            return traced[0](event, context, **kwargs)

        return decorate

    def __getattr__(self, name: str) -> Any:
        # Anything else (put_annotation, capture_method, provider, ...) is the Powertools tracer's own.
        return getattr(self.tracer, name)


tracer = LazyTracer(SERVICE)
