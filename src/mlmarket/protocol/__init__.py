"""The wire: routing, SigV4, awsJson1_1 and rest-json, validation, the error boundary."""
