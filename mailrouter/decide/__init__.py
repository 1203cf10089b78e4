"""Decide stage: pure functions from an Inquiry and the state they read to a Decision."""
