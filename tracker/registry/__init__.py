"""The device registry: which devices the service takes data from, and their broker accounts."""
