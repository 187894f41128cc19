"""The version-neutral OCPP station core: connection, durable message queue, authorization, transactions."""
