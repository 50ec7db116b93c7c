"""Pure rules and lifecycles. Nothing here does I/O or imports the rest of mlmarket."""
