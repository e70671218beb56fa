"""Rotation: the engine (a persisted, resumable state machine) and its strategies."""
