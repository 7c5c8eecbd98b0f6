"""Journeys, paths, entry scans, intents and the send policy on DynamoDB; steps on Step Functions; tasks on
EventBridge."""
