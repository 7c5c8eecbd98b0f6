"""Scoring runs' RFM documents on DynamoDB."""
