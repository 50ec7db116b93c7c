"""The AWS Marketplace Catalog API: sellers' products, as change sets."""
