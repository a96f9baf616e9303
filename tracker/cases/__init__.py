"""Cases as the service keeps them: the engine over the store, who may act, the deadline watcher."""
