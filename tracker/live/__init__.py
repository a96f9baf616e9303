"""Live state: each device's last position, the fan-out hub for WebSocket clients, and the patrol engine fed by the pipeline."""
