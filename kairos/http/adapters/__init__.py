"""API keys on DynamoDB."""
