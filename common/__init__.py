"""Plumbing the three services share: configuration, the app factory, the JSON
error envelope, shared schema fields, messaging and the worker loop.

Business logic never lives here; each service package holds its own.
"""
