"""AWS shapes as TypedDicts, generated from the botocore models the edge checks requests
against (scripts/generate_shapes.py): the vocabulary of resources' specs and states."""
