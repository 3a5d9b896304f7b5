"""Shared plumbing of the stage services: servers, object store, NATS bus, job records."""
