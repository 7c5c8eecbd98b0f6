"""Published models on S3 and the product catalogue on DynamoDB."""
