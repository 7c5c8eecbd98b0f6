"""The customers table and the event archive on DynamoDB and S3."""
