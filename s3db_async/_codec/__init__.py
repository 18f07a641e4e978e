"""Record encoding: attribute ids, compact values, behaviors, secrets, metadata documents."""
