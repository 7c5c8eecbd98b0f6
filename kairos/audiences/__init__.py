"""Audiences: filters over customers and saved segments (named audiences)."""
