"""Plugin framework internals: base class, host, storage, locks, namespaces."""
