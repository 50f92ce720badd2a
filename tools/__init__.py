"""Development tools that generate the package's shipped assets (not installed with the package)."""
