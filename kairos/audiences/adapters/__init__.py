"""Saved segments on DynamoDB."""
