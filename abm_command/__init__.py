"""The `abm` command and the local Functions host behind `abm serve`: entry points, never deployed."""
