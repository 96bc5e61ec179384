"""Blueprints: one per resource."""
