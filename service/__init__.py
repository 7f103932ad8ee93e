"""greenopt service: HTTP API, storage, scheduler and solve runners around the optimizer."""
