"""The composition root: builds the service from its settings (and the web app), and the CLI. The only place that imports web/."""
