"""The HTTP front: the FastAPI app, its models, errors, access control, event stream, server, and the CLI client.

A front: it imports only the port (controller.port), the core's types and errors, controller.addresses,
and the token redaction shared with the drivers; never the runtime, the charging model or another front.
"""
