"""Writes of the games app, by sub-domain: imports, participants, rounds, scoring, sampling."""
