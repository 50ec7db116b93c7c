"""S3 (rest-xml): the subset of the API that real clients need, over the object store."""
