"""The composition root: builds the service from its settings (and the web app), the demo
(broker, database, service and simulated city together), and the CLI. The only place that
imports web/."""
