"""One-off administration: provisioning the product's tables, webhook registration, health."""
