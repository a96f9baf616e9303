"""The development city: the demo city, its simulated fleet, and starters for private Mosquitto and PostgreSQL instances."""
