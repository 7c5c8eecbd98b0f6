"""Messaging: what may be sent (consent, the deployment's send policy), sending it once, and its log."""
