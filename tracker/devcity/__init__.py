"""The development city: the demo, its simulated fleet, and starters for private Mosquitto and PostgreSQL instances."""
