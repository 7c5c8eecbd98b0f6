"""The message log (DynamoDB, archived to S3) and the providers (SES, End User Messaging, SNS, Telegram)."""
