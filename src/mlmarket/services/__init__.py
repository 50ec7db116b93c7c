"""Thin providers per service: validated, typed input in; domain calls; output out. No I/O."""
