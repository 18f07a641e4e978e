"""Resource facade and its collaborators."""
