"""Kairos: serverless send-time optimization and multichannel messaging for AWS."""

__version__ = "0.1.0"
