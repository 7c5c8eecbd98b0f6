"""The Kairos API's operations, one router per part of the product, included by the API handler."""
