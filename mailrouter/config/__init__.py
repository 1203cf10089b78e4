"""Configuration: the ground floor every stage reads (schema, reader, credentials)."""
