"""Promo code pools on DynamoDB, and their alerts as CloudWatch metrics."""
