"""Journeys and campaigns on one engine: definitions and their graph, entry, paths, the runner, results."""
