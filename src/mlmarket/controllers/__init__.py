"""Controllers bring containers to the state the database asks for, and record what happened."""
