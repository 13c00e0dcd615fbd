"""What the three services share: configuration, the app factory, the JSON
error envelope, shared schema fields, the messaging machinery and the worker
loop (common/messaging/), and the shop's shared language, the events the
services tell each other (common/events/).

Business rules never live here; each service package holds its own.
"""
