"""Campaigns: definitions, audiences (segments), send-time decisions."""
