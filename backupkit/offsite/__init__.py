"""Offsite copies in S3-compatible object storage: upload with proof, list, prune, and read an
archive straight from a bucket. boto3 is imported only when a remote is used."""
