"""Discover the state: where it is, what it holds, its registry of agent databases, its lock."""
