"""The one place that owns the logger, tracer and metrics of every Kairos function."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "kairos"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="Kairos", service=SERVICE)
