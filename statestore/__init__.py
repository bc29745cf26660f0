"""The state store: its port (records, role protocols) beside its SQLite, Azure Tables and overlay adapters."""
